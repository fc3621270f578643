//! Evidence (a `.sha256` sidecar, a `.minisig` signature) that comes after its package was
//! taken.
//!
//! An uploader that sends the package first and its evidence second (rsync and `sftp mput`
//! send in name order, and `X.zip` comes before `X.zip.minisig` and `X.zip.sha256`) hands the
//! package over before its evidence exists. Under `evidence_sidecar = "if-present"` and
//! `evidence_signature = "if-present"` the package is taken without it. Its evidence must
//! then neither lie in the channel to be read with the next upload of that name (where it
//! would reject a corrected package for not matching) nor be said to be waiting for its
//! package.
//!
//! Each channel notes here the packages it handed over that were archived as verified
//! ([`Taken::note`]), and starts with those the journal says it handed over before the server
//! last stopped or crashed ([`Taken::from_journal`]): evidence put while the server was down
//! is told as well. Evidence that arrives with no package beside it is looked up: a sidecar
//! ([`Taken::late`]) that gives the digest of the last package taken under its name, or a
//! signature ([`Taken::late_signature`]) that verifies, with one of `minisign_keys`, the
//! bytes of that package as the archive keeps them, is that package's evidence, come late.
//! It is journaled (`evidence-late`, with its text and the package's digest) and leaves the
//! channel: nothing is lost, since the journal holds it whole. Any other stays for the next
//! upload of its name, as before: it may be the evidence of a corrected package sent
//! evidence first.
//!
//! The check and the `evidence-late` entry are the publisher's ([`crate::publisher`]'s
//! `late`), which checks the same way the evidence that comes with a package already taken
//! (a duplicate). A signature come late is not kept in the archive beside its package: the
//! evidence beside a verified package is what it was verified with ([`crate::archive`]); the
//! journal's `evidence-late` entry is its record.
//!
//! With no `minisign_keys` nothing can verify a signature: one that comes late stays. That is
//! harmless: with no key a signature is only `unchecked` with the next upload of its name, and
//! never rejects it (`evidence_signature = "required"` needs a key to start at all).
//!
//! # Guarantees
//! - A package already taken is never changed, published again or rejected by evidence that
//!   came after it: the journal says what came, and whether it matches.
//! - Only a sidecar whose digest equals the taken package's, or a signature that verifies the
//!   taken package's archived bytes with a configured key, is consumed; any other is left as
//!   it was.
//! - Checking a signature reads the archived package once, opened as a regular file (never
//!   through a link), only when the signature names a configured key, and never more than
//!   `max_package_bytes` of it; once for each upload of a signature, or each change of one
//!   in the intake folder. The SFTP channel does it on the blocking pool, off the async
//!   threads; the intake folder on its own thread, as all its file work.
//! - Memory is bounded: the last [`KEPT`] packages taken are remembered, by name.
//! - It survives a stop or a crash: at start each channel remembers what it would had it kept
//!   running, as far as the journal's last events tell (a delivery taken, not one refused
//!   after it under its name; one a stop interrupted once the start took it again). A
//!   journal that cannot be read is logged and the channel starts with nothing remembered:
//!   it takes packages all the same.

use std::collections::VecDeque;
use std::sync::Mutex;

use jiff::Timestamp;
use minisign_verify::PublicKey;
use serde_json::json;

use super::Channel;
use crate::archive::Archive;
use crate::hash::Sha256;
use crate::journal::Journal;
use crate::package::{EvidenceFile, PackageName};
use crate::publisher::{Late, Outcome};

/// How many packages taken are remembered, the latest of each name.
const KEPT: usize = 256;

/// The packages a channel handed over lately that were archived as verified: the latest of
/// each name, with its digest and when it was taken.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    recent: Mutex<VecDeque<(PackageName, Sha256, Timestamp)>>,
}

/// What a signature come late is checked with: the keys signatures are verified with
/// (`minisign_keys`), the archive the package taken is read from, and the most of it that is
/// read (`max_package_bytes`: no package taken is larger).
#[derive(Debug, Clone)]
pub(crate) struct SignatureCheck {
    /// The keys one of which must verify the signature; none, and no signature is late.
    pub(crate) keys: Vec<PublicKey>,
    /// Where the package taken is read from, by its digest.
    pub(crate) archive: Archive,
    /// The most bytes of the package that are read.
    pub(crate) max_bytes: u64,
}

impl Taken {
    /// Notes the package `name` handed over with this `outcome`, when the outcome archived
    /// it as verified (published, already there, older, held). A rejected package is not
    /// noted: no evidence that comes later makes it taken.
    pub(crate) fn note(&self, name: &PackageName, outcome: &Outcome) {
        let sha = match outcome {
            Outcome::Published { sha256, .. }
            | Outcome::Duplicate { sha256 }
            | Outcome::Older { sha256, .. }
            | Outcome::Held { sha256, .. } => sha256,
            Outcome::Rejected { .. } | Outcome::Failed { .. } => return,
        };
        let Ok(sha) = sha.parse::<Sha256>() else {
            return;
        };
        self.remember(name.clone(), sha, Timestamp::now());
    }

    /// The packages `channel` handed over lately that were taken, as the journal tells them
    /// ([`Journal::taken_arrivals`]): what [`Taken::note`] would hold had the server not
    /// stopped since. A journal that cannot be read leaves it empty, logged: a sidecar that
    /// comes late then stays for the next upload of its name, as it would without this memory.
    pub(crate) fn from_journal(journal: &Journal, channel: Channel) -> Self {
        let taken = Self::default();
        // As its `received` events name it: `watch`, `sftp`.
        let named = json!(channel);
        let Some(channel_name) = named.as_str() else {
            return taken;
        };
        match journal.taken_arrivals(channel_name, KEPT) {
            Ok(arrivals) => {
                // Oldest first, as they were noted.
                for arrival in arrivals.into_iter().rev() {
                    if let Some(name) = PackageName::new(&arrival.name) {
                        taken.remember(name, arrival.sha256, arrival.at);
                    }
                }
            }
            Err(e) => tracing::warn!(
                channel = channel_name, error = %e,
                "cannot read the packages taken lately from the journal; a sidecar that comes \
                 after a package taken before this start stays for the next upload of its name"
            ),
        }
        taken
    }

    /// Remembers `sha` as the package last taken under `name`, at `at`, forgetting the oldest
    /// past [`KEPT`].
    fn remember(&self, name: PackageName, sha: Sha256, at: Timestamp) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|(n, _, _)| *n != name);
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back((name, sha, at));
    }

    /// The digest of the package last taken under `name`, and when it was taken.
    fn last(&self, name: &PackageName) -> Option<(Sha256, Timestamp)> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().rev())
            .find(|(n, _, _)| n == name)
            .map(|(_, sha256, at)| (*sha256, *at))
    }

    /// Whether `evidence`, the file `name` (`<package>.sha256` or `<package>.minisig`) come
    /// with no package beside it, matches the package last taken under its name
    /// ([`Taken::late`], [`Taken::late_signature`]). May read that package: call it off the
    /// async threads.
    pub(crate) fn late_evidence(
        &self,
        name: &str,
        evidence: &EvidenceFile,
        check: &SignatureCheck,
    ) -> Option<Late> {
        if let Some(package) = name.strip_suffix(".sha256").and_then(PackageName::new) {
            return self.late(&package, evidence);
        }
        let package = name.strip_suffix(".minisig").and_then(PackageName::new)?;
        self.late_signature(&package, evidence, check)
    }

    /// Whether `sidecar`, the `.sha256` of `package`, gives the digest of the package last
    /// taken under that name: then it is that package's evidence, come late.
    fn late(&self, package: &PackageName, sidecar: &EvidenceFile) -> Option<Late> {
        Late::sidecar(package, self.last(package)?, sidecar).ok()
    }

    /// Whether `signature`, the `.minisig` of `package`, verifies with one of `check`'s keys
    /// the package last taken under that name, read from the archive: then it is that
    /// package's evidence, come late. Reads the package (up to `check.max_bytes`) when the
    /// signature names one of the keys: call it off the async threads.
    fn late_signature(
        &self,
        package: &PackageName,
        signature: &EvidenceFile,
        check: &SignatureCheck,
    ) -> Option<Late> {
        if check.keys.is_empty() {
            return None;
        }
        let taken = self.last(package)?;
        let path = check.archive.locate(taken.0)?;
        let archived = (path.as_path(), check.max_bytes);
        match Late::signature(package, taken, signature, &check.keys, archived) {
            Ok(late) => Some(late),
            Err(reason) => {
                tracing::debug!(%package, %reason, "a signature with no package beside it does not verify the package taken last under its name; it stays");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::EventKind;

    fn published(bytes: &[u8]) -> Outcome {
        Outcome::Published {
            corte: "20240602_2000".to_owned(),
            sha256: Sha256::of(bytes).to_hex(),
            lag_seconds: 0.0,
        }
    }

    fn sidecar(bytes: &[u8], name: &str) -> EvidenceFile {
        EvidenceFile::of_bytes(format!("{}  {name}\n", Sha256::of(bytes).to_hex()).into_bytes())
    }

    #[test]
    fn only_the_digest_of_the_last_package_taken_under_the_name_is_late_evidence() {
        let taken = Taken::default();
        let name = PackageName::new("PREP_20240602_2000.zip").unwrap();
        assert!(taken.late(&name, &sidecar(b"one", name.as_str())).is_none());
        taken.note(&name, &published(b"one"));
        assert!(taken.late(&name, &sidecar(b"one", name.as_str())).is_some());
        assert!(taken.late(&name, &sidecar(b"two", name.as_str())).is_none());
        // A sidecar naming another file, or not a digest at all, is no one's.
        assert!(taken.late(&name, &sidecar(b"one", "OTRO.zip")).is_none());
        let junk = EvidenceFile::of_bytes(b"not a digest".to_vec());
        assert!(taken.late(&name, &junk).is_none());
        taken.note(&name, &published(b"two"));
        assert!(taken.late(&name, &sidecar(b"one", name.as_str())).is_none());
        assert!(taken.late(&name, &sidecar(b"two", name.as_str())).is_some());
    }

    /// A key pair, its public half as `minisign_keys` gives it.
    fn key_pair() -> (minisign::SecretKey, PublicKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = PublicKey::from_base64(&pair.pk.to_base64()).unwrap();
        (pair.sk, public)
    }

    fn signature(key: &minisign::SecretKey, bytes: &[u8]) -> EvidenceFile {
        let sig = minisign::sign(None, key, bytes, None, None).unwrap();
        EvidenceFile::of_bytes(sig.into_string().into_bytes())
    }

    #[test]
    fn only_a_signature_of_the_archived_package_last_taken_by_a_configured_key_is_late() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archivo");
        let reserve = crate::store::space::tests::reserve_at(&root, 0);
        let archive = Archive::open(&root, reserve.archive()).unwrap();
        let one = b"package one".as_slice();
        let source = dir.path().join("one.zip");
        std::fs::write(&source, one).unwrap();
        let stored = archive.store_file(&source, 1000).unwrap();
        archive.accept(stored.sha256).unwrap();
        let (key, public) = key_pair();
        let (other_key, other_public) = key_pair();
        let check = SignatureCheck {
            keys: vec![other_public, public],
            archive,
            max_bytes: 1000,
        };
        let taken = Taken::default();
        let name = PackageName::new("PREP_20240602_2000.zip").unwrap();
        let late = |sig: &EvidenceFile, check: &SignatureCheck| {
            taken.late_signature(&name, sig, check).is_some()
        };
        // Nothing taken under the name yet.
        assert!(!late(&signature(&key, one), &check));
        taken.note(&name, &published(one));
        assert!(late(&signature(&key, one), &check));
        assert!(late(&signature(&other_key, one), &check));
        // Of other bytes, by a key not configured, not a signature, or with no keys at all.
        assert!(!late(&signature(&key, b"package two"), &check));
        let (stranger, _) = key_pair();
        assert!(!late(&signature(&stranger, one), &check));
        assert!(!late(
            &EvidenceFile::of_bytes(b"not a signature".to_vec()),
            &check
        ));
        let no_keys = SignatureCheck {
            keys: Vec::new(),
            ..check.clone()
        };
        assert!(!late(&signature(&key, one), &no_keys));
        // An archived package larger than any package may be now is not read.
        let smaller = SignatureCheck {
            max_bytes: one.len() as u64 - 1,
            ..check.clone()
        };
        assert!(!late(&signature(&key, one), &smaller));
        // Bytes taken that the archive does not hold (gone, or never stored there).
        taken.note(&name, &published(b"package two"));
        assert!(!late(&signature(&key, b"package two"), &check));
    }

    #[test]
    fn a_rejected_package_is_not_noted_and_memory_is_bounded() {
        let taken = Taken::default();
        let name = PackageName::new("PREP_20240602_2000.zip").unwrap();
        let rejected = Outcome::Rejected {
            reason: "sidecar".to_owned(),
            sha256: Some(Sha256::of(b"one").to_hex()),
        };
        taken.note(&name, &rejected);
        assert!(taken.late(&name, &sidecar(b"one", name.as_str())).is_none());
        for n in 0..KEPT * 2 {
            let other = PackageName::new(&format!("PREP_{n}.zip")).unwrap();
            taken.note(&other, &published(b"x"));
        }
        let recent = taken.recent.lock().unwrap();
        assert_eq!(recent.len(), KEPT);
    }

    /// Journals a delivery of `bytes` as `name` by `channel`, and then what became of it.
    fn deliver(journal: &Journal, bytes: &[u8], name: &str, channel: &str, kind: EventKind) {
        let package = Some((Sha256::of(bytes), name));
        let channel = json!({ "channel": channel });
        journal
            .record(EventKind::Received, package, channel)
            .unwrap();
        journal.record(kind, package, json!({})).unwrap();
    }

    #[test]
    fn a_start_remembers_what_its_channel_took_before_as_the_journal_tells_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        // Taken, then a later delivery under the name refused: the taken one stays.
        deliver(&journal, b"one", "A.zip", "watch", EventKind::Published);
        deliver(&journal, b"two", "A.zip", "watch", EventKind::Rejected);
        // Taken by another channel: that channel's.
        deliver(&journal, b"three", "B.zip", "sftp", EventKind::Older);
        // The same bytes again, already there: taken.
        deliver(&journal, b"four", "C.zip", "watch", EventKind::Held);
        deliver(&journal, b"four", "C.zip", "watch", EventKind::Duplicate);
        // Set aside, then published by an operator: the channel noted it refused.
        deliver(&journal, b"five", "D.zip", "watch", EventKind::SetAside);
        let five = Some((Sha256::of(b"five"), "D.zip"));
        journal
            .record(EventKind::Published, five, json!({}))
            .unwrap();
        // This machine failed on it (no outcome), then it was delivered again and refused.
        let six = Some((Sha256::of(b"six"), "E.zip"));
        let by_watch = json!({ "channel": "watch" });
        journal
            .record(EventKind::Received, six, by_watch.clone())
            .unwrap();
        deliver(&journal, b"six", "E.zip", "watch", EventKind::Rejected);
        // Interrupted by a stop, and taken again from the archive at the start.
        let seven = Some((Sha256::of(b"seven"), "F.zip"));
        journal
            .record(EventKind::Received, seven, by_watch)
            .unwrap();
        journal.record(EventKind::Start, None, json!({})).unwrap();
        journal
            .record(EventKind::Published, seven, json!({}))
            .unwrap();

        let watch = Taken::from_journal(&journal, Channel::Watch);
        let sftp = Taken::from_journal(&journal, Channel::Sftp);
        let is_late = |taken: &Taken, bytes: &[u8], name: &str| {
            let name = PackageName::new(name).unwrap();
            taken.late(&name, &sidecar(bytes, name.as_str())).is_some()
        };
        assert!(is_late(&watch, b"one", "A.zip"));
        assert!(!is_late(&watch, b"two", "A.zip"));
        assert!(!is_late(&watch, b"three", "B.zip"));
        assert!(is_late(&sftp, b"three", "B.zip"));
        assert!(!is_late(&sftp, b"one", "A.zip"));
        assert!(is_late(&watch, b"four", "C.zip"));
        assert!(!is_late(&watch, b"five", "D.zip"));
        assert!(!is_late(&watch, b"six", "E.zip"));
        assert!(is_late(&watch, b"seven", "F.zip"));
    }

    #[test]
    fn a_start_remembers_the_latest_names_taken_and_goes_on_empty_without_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        for n in 0..=KEPT {
            deliver(
                &journal,
                b"x",
                &format!("P{n}.zip"),
                "watch",
                EventKind::Older,
            );
        }
        let watch = Taken::from_journal(&journal, Channel::Watch);
        let names: Vec<String> = (watch.recent.lock().unwrap().iter())
            .map(|(name, _, _)| name.to_string())
            .collect();
        let latest: Vec<String> = (1..=KEPT).map(|n| format!("P{n}.zip")).collect();
        assert_eq!(names, latest, "oldest first, as they were noted");

        // A journal with no tables cannot be read: the channel starts all the same.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let unreadable = Journal::open_read_only(&empty).unwrap();
        let watch = Taken::from_journal(&unreadable, Channel::Watch);
        assert!(watch.recent.lock().unwrap().is_empty());
    }
}
