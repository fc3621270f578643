//! Evidence (a `.sha256` sidecar, a `.minisig` signature) for a package already taken: checked
//! against it, and journaled.
//!
//! It comes two ways: alone, after its package was taken (an uploader that sends in name
//! order; [`crate::intake`]'s channels find it and say which package it may be for), or with
//! a delivery of bytes already published or archived as older (the institute sends a corte
//! again because its first upload lacked its signature, or over a second channel): a
//! duplicate, which is not verified or published again ([`Publisher::duplicate_evidence`]),
//! or a held package sent again, which is verified again with the evidence the archive keeps
//! beside it ([`Publisher::evidence_again`]). Either way the package is not changed, published
//! again or rejected for it.
//!
//! Evidence that matches (a sidecar that gives the package's digest, a signature that
//! verifies, with one of `minisign_keys`, the package's bytes as the archive keeps them) is
//! journaled as the package's evidence come late (`evidence-late`, with its text). It is not
//! added to the archive beside the package: the evidence beside a verified package is what it
//! was verified with ([`crate::archive`]), as the journal's `verified` entry says, and this
//! was not. Kept there, it would be checked again at every start with the keys of that day
//! (a key retired since would fail it, and it would be set aside with a warning that it came
//! from another delivery), and it would be served to replicas beside the package as if the
//! package had been checked with it. The journal's entry is its record, whole.
//!
//! # Guarantees
//! - Evidence that came with a duplicate is never dropped unsaid: what the archive already
//!   keeps beside the package, byte for byte, is named on the `duplicate` entry; evidence
//!   that matches is journaled `evidence-late`; any other (a digest of other bytes, a
//!   signature that does not verify, one that no key can check, a file too large to read) is
//!   journaled whole on the `duplicate` entry with `"matches": false` or `null` and why (for
//!   a held package sent again, in a `warning`, `"check": "evidence"`). None of it replaces
//!   what the archive keeps or what a package is verified with, and nothing live changes.
//! - Checking a signature reads the archived package once, opened as a regular file (never
//!   through a link), only when the signature names a configured key, and never more than
//!   `max_package_bytes` of it.

use std::io::{self, Read};
use std::path::Path;

use minisign_verify::PublicKey;

use super::*;
use crate::intake::open_regular;
use crate::package::{sidecar_digest, verify_signature};

/// Evidence that matches a package taken before it came.
#[derive(Debug)]
pub(crate) struct Late {
    package: PackageName,
    sha256: Sha256,
    taken_at: Timestamp,
    text: String,
    kind: LateKind,
    /// Whether it came with the package's bytes again (a duplicate), not alone.
    again: bool,
}

/// Which evidence came late.
#[derive(Debug)]
enum LateKind {
    /// A `.sha256` sidecar giving the package's digest.
    Sidecar,
    /// A `.minisig` signature that verifies the package; its trusted comment.
    Signature(String),
}

impl Late {
    /// `sidecar`, the `.sha256` of `package` (taken at `taken_at`, its digest `sha256`), when
    /// it gives that digest; else why not, in plain words.
    pub(crate) fn sidecar(
        package: &PackageName,
        (sha256, taken_at): (Sha256, Timestamp),
        sidecar: &EvidenceFile,
    ) -> Result<Self, String> {
        let text = sidecar.text().ok_or_else(too_large)?;
        let digest = sidecar_digest(&text, package.as_str()).map_err(|e| e.to_string())?;
        if digest != sha256 {
            return Err(format!(
                "the .sha256 file says {digest}, but the package's SHA-256 is {sha256}"
            ));
        }
        Ok(Self {
            package: package.clone(),
            sha256,
            taken_at,
            text,
            kind: LateKind::Sidecar,
            again: false,
        })
    }

    /// `signature`, the `.minisig` of `package` (taken at `taken_at`, its digest `sha256`),
    /// when it verifies with one of `keys` the package archived at `archived` (read once, at
    /// most `max_bytes`, only when the signature names one of the keys); else why not. Call
    /// it off the async threads.
    pub(crate) fn signature(
        package: &PackageName,
        (sha256, taken_at): (Sha256, Timestamp),
        signature: &EvidenceFile,
        keys: &[PublicKey],
        (archived, max_bytes): (&Path, u64),
    ) -> Result<Self, String> {
        let text = signature.text().ok_or_else(too_large)?;
        let open = || -> io::Result<io::Take<std::fs::File>> {
            let file = open_regular(archived)?;
            if file.metadata()?.len() > max_bytes {
                return Err(io::Error::other(
                    "the archived package is larger than max_package_bytes",
                ));
            }
            Ok(file.take(max_bytes))
        };
        let trusted_comment = verify_signature(&text, keys, open).map_err(|e| e.to_string())?;
        Ok(Self {
            package: package.clone(),
            sha256,
            taken_at,
            text,
            kind: LateKind::Signature(trusted_comment),
            again: false,
        })
    }

    /// What the evidence says of its package, for its sender: `gives the digest of`.
    pub(crate) fn says(&self) -> &'static str {
        match self.kind {
            LateKind::Sidecar => "gives the digest of",
            LateKind::Signature(_) => "is a valid signature of",
        }
    }

    /// Journals the evidence come late (`evidence-late`), as it was sent, for the package it
    /// matches; `origin` names the SFTP client when known. Evidence that came with the
    /// package's bytes again says so (`"duplicate": true`).
    pub(crate) fn record(&self, journal: &Journal, channel: Channel, origin: Option<&str>) {
        let package = &self.package;
        let mut detail = json!({
            "channel": channel, "origin": origin, "matches": true,
            "taken_at": self.taken_at.to_string(),
        });
        let (evidence, what, is) = match &self.kind {
            LateKind::Sidecar => {
                detail["sidecar"] = json!(self.text);
                (format!("{package}.sha256"), "sidecar", "gives its digest")
            }
            LateKind::Signature(trusted_comment) => {
                detail["signature"] = json!(self.text);
                detail["trusted_comment"] = json!(trusted_comment);
                (
                    format!("{package}.minisig"),
                    "signature",
                    "is a valid signature of it by a configured key",
                )
            }
        };
        let came = if self.again {
            detail["duplicate"] = json!(true);
            tracing::info!(%package, "a {what} came with a package already taken; it matches it");
            format!("came with {package} sent again after it was taken")
        } else {
            tracing::info!(%package, "a {what} came after its package was taken; it matches it");
            format!("came after {package} was taken")
        };
        detail["note"] = json!(format!(
            "{evidence} {came}, and {is}: this copy was not read with the package (the \
             package's `verified` entry says what it was checked against before it was \
             published or archived), and it is kept in this entry, not in the archive; send \
             the {what} before its package to have it checked first"
        ));
        detail["evidence"] = json!(evidence);
        let _ = journal.record(
            EventKind::EvidenceLate,
            Some((self.sha256, package.as_str())),
            detail,
        );
    }
}

/// Why evidence too large to be read is not checked.
fn too_large() -> String {
    format!(
        "the file is larger than an evidence file may be ({} bytes); it was not read",
        package::MAX_EVIDENCE_BYTES
    )
}

impl Publisher {
    /// Checks the evidence that came with `job`, a delivery of bytes already taken (a
    /// duplicate), against the package archived at `job.stored`: journals what matches and
    /// the archive does not keep already as evidence come late, and returns what is said of
    /// each file on the `duplicate` entry (`"evidence"`).
    pub(super) fn duplicate_evidence(&self, job: &Job<'_>) -> Vec<serde_json::Value> {
        let (r, stored) = (job.received, &job.stored);
        let taken_at = match self.journal.package(stored.sha256) {
            Ok(Some((_, at, _))) => at,
            _ => r.received_at,
        };
        let mut said = Vec::new();
        for (ext, what, file) in [
            ("sha256", "sidecar", &r.sidecar),
            ("minisig", "signature", &r.signature),
        ] {
            let Some(file) = file else { continue };
            let evidence = format!("{}.{ext}", r.name);
            if self.archive.read_evidence(&stored.path, ext).as_ref() == Some(file) {
                said.push(json!({"evidence": evidence, "matches": true, "archived": true}));
                continue;
            }
            let taken = (stored.sha256, taken_at);
            let keys = &self.package.evidence.public_keys;
            let checked = match ext {
                "sha256" => Late::sidecar(&r.name, taken, file),
                _ if keys.is_empty() => {
                    let mut entry = json!({
                        "evidence": evidence, "matches": null,
                        "reason": "no minisign_keys are set: nothing can verify a signature",
                    });
                    entry[what] = json!(file.text());
                    said.push(entry);
                    continue;
                }
                _ => {
                    let limit = self.package.limits.max_package_bytes;
                    Late::signature(&r.name, taken, file, keys, (&stored.path, limit))
                }
            };
            match checked {
                Ok(mut late) => {
                    late.again = true;
                    late.record(&self.journal, r.channel, r.origin.as_deref());
                    said.push(json!({
                        "evidence": evidence, "matches": true, "journaled": "evidence-late",
                    }));
                }
                Err(reason) => {
                    tracing::warn!(package = %r.name, %reason, "evidence sent with a package already taken does not match it");
                    let mut entry = json!({
                        "evidence": evidence, "matches": false, "reason": reason,
                    });
                    entry[what] = json!(file.text());
                    said.push(entry);
                }
            }
        }
        said
    }

    /// Checks the evidence that came with `job`, a delivery of bytes that verified before but
    /// are not a duplicate (held: they are taken again, with the evidence the archive keeps),
    /// as [`Publisher::duplicate_evidence`] does; what does not match is journaled whole as a
    /// warning (`"check": "evidence"`).
    pub(super) fn evidence_again(&self, job: &Job<'_>) {
        let said = self.duplicate_evidence(job);
        if said.iter().all(|e| e["matches"] == true) {
            return;
        }
        let warning = "evidence sent with a package that verified before does not match it, \
                       or cannot be checked: the package keeps the evidence it was verified \
                       with";
        self.warn(
            job.pkg_ref(),
            warning,
            json!({"check": "evidence", "channel": job.received.channel, "evidence": said}),
        );
    }
}
