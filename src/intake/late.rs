//! A `.sha256` sidecar that comes after its package was taken.
//!
//! An uploader that sends the package first and its sidecar second (rsync and `sftp mput`
//! send in name order, and `X.zip` comes before `X.zip.sha256`) hands the package over
//! before its evidence exists. Under `evidence_sidecar = "if-present"` the package is taken
//! without it. Its sidecar must then neither lie in the intake folder to be read with the
//! next upload of that name (where it would reject a corrected package for not matching) nor
//! be said to be waiting for its package.
//!
//! Each channel notes here the packages it handed over that were archived as verified
//! ([`Taken::note`]). A sidecar that then arrives with no package beside it is looked up
//! ([`Taken::late`]): when it gives the digest of the last package taken under its name, it
//! is that package's evidence, come late. It is journaled (`evidence-late`, with its text and
//! the package's digest) and leaves the channel: nothing is lost, since the journal holds it
//! whole. A sidecar that gives another digest stays for the next upload of its name, as
//! before: it may be the evidence of a corrected package sent evidence first.
//!
//! # Guarantees
//! - A package already taken is never changed, published again or rejected by evidence that
//!   came after it: the journal says what came, and whether it matches.
//! - Only a sidecar whose digest equals the taken package's is consumed; any other is left
//!   as it was.
//! - Memory is bounded: the last [`KEPT`] packages taken are remembered, by name.

use std::collections::VecDeque;
use std::sync::Mutex;

use jiff::Timestamp;
use serde_json::json;

use super::Channel;
use crate::hash::Sha256;
use crate::journal::{EventKind, Journal};
use crate::package::{EvidenceFile, PackageName, sidecar_digest};
use crate::publisher::Outcome;

/// How many packages taken are remembered, the latest of each name.
const KEPT: usize = 256;

/// The packages a channel handed over lately that were archived as verified: the latest of
/// each name, with its digest and when it was taken.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    recent: Mutex<VecDeque<(PackageName, Sha256, Timestamp)>>,
}

/// A sidecar that gives the digest of the package taken under its name before it came.
#[derive(Debug)]
pub(crate) struct Late {
    package: PackageName,
    sha256: Sha256,
    taken_at: Timestamp,
    text: String,
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
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|(n, _, _)| n != name);
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back((name.clone(), sha, Timestamp::now()));
    }

    /// Whether `sidecar`, the `.sha256` of `package`, gives the digest of the package last
    /// taken under that name: then it is that package's evidence, come late.
    pub(crate) fn late(&self, package: &PackageName, sidecar: &EvidenceFile) -> Option<Late> {
        let text = sidecar.text()?;
        let digest = sidecar_digest(&text, package.as_str()).ok()?;
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let (_, sha256, taken_at) = recent.iter().rev().find(|(n, _, _)| n == package)?;
        (*sha256 == digest).then(|| Late {
            package: package.clone(),
            sha256: *sha256,
            taken_at: *taken_at,
            text,
        })
    }
}

impl Late {
    /// Journals the sidecar come late (`evidence-late`), as it was sent, for the package it
    /// matches; `origin` names the SFTP client when known.
    pub(crate) fn record(&self, journal: &Journal, channel: Channel, origin: Option<&str>) {
        let evidence = format!("{}.sha256", self.package);
        tracing::info!(
            package = %self.package,
            "a sidecar came after its package was taken; it gives the package's digest"
        );
        let _ = journal.record(
            EventKind::EvidenceLate,
            Some((self.sha256, self.package.as_str())),
            json!({
                "channel": channel, "origin": origin, "evidence": evidence,
                "sidecar": self.text, "matches": true,
                "taken_at": self.taken_at.to_string(),
                "note": format!(
                    "{evidence} came after {} was taken (without it), and gives its digest: \
                     the package was not checked against it before it was published or \
                     archived; send the sidecar before its package to have it checked first",
                    self.package
                ),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
