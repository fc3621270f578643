//! What a start does before any new package is taken: name each published package as it was
//! published, take again, from the archive, what a stop interrupted (or set it aside), file
//! away pending copies, and rebuild the live site from the journal's publications and the
//! verified packages, each reverified (evidence beside a package that the journal says it was
//! verified without is set aside then, and journaled).
//!
//! # A journal behind its archive
//! A journal can lose its last rows while the archive keeps the packages they spoke of: its
//! `bitacora.sqlite-wal` file removed after a crash (the rows written since the last
//! checkpoint were only there), a backup restored without it, an older journal restored
//! beside a newer archive. The rebuild finds every verified package (`archivo/<aa>/`) the
//! journal does not know, or knows only as received (never verified: the rows that saw it
//! verified, archived and perhaps published are the ones lost), by one listing of the archive
//! and one query, and:
//! - says so: one journal `warning` (`"check": "unjournaled"`, the packages named, at most
//!   [`MAX_UNJOURNALED_NAMED`], and counted) and one log line, each saying what to do;
//! - journals each as `unjournaled` (its name from the `.sha256` file beside it, when that
//!   names it; its size; when it was archived), so that `/status` counts it and the warning is
//!   said once: the next start knows it. It is not decided: delivered again, it is taken as
//!   any package, verified and published if its corte is the newest; named by an operator's
//!   rollback (its corte id as its name gives it, or a SHA-256 prefix), it is verified again
//!   from the archive and published, as a package held or older is ([`super::rollback`]);
//! - guesses nothing: none of them is published, moved or removed, and the live corte is the
//!   last the journal knows (which may be older than the one served before the rows were
//!   lost; the warning says which). Which of them went live, on what, in what order, only the
//!   lost rows said.

use super::*;
use crate::journal::Unjournaled;

/// Most packages the journal does not know named in the start's warning about them.
const MAX_UNJOURNALED_NAMED: usize = 20;

impl Publisher {
    /// Takes again, from the archive, the packages whose processing a crash interrupted
    /// (each is set aside instead once it has been interrupted [`MAX_ATTEMPTS`] times), and
    /// files away pending copies whose outcome is already decided.
    pub(crate) fn recover(&self) {
        let interrupted = match self.journal.interrupted() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal to recover interrupted packages");
                return;
            }
        };
        self.rename_as_published();
        for sha in interrupted {
            self.take_again(sha);
        }
        self.file_away_pending();
    }

    /// Has the journal name every published package as it was published (an earlier version
    /// kept the name of its first arrival, perhaps a rejected one), each renaming journaled.
    fn rename_as_published(&self) {
        let renamed = match self.journal.name_published_as_published() {
            Ok(renamed) => renamed,
            Err(e) => {
                tracing::error!(error = %e, "cannot check the names of the published packages");
                return;
            }
        };
        for (sha, old, name) in renamed {
            let warning = format!(
                "the journal named the published package {name} ({sha}) {old}, the name of an \
                 earlier delivery of the same bytes; it is named {name}, as it was published, \
                 from now on (the replication feed lists it so)"
            );
            tracing::warn!(%name, %old, %sha, "published package renamed as published");
            self.event(
                EventKind::Warning,
                Some((sha, &name)),
                json!({"warning": warning, "check": "name", "was": old}),
            );
        }
    }

    /// Takes again, from the archive, a package whose processing was interrupted.
    fn take_again(&self, sha: Sha256) {
        let Ok(Some((name, first_received, _))) = self.journal.package(sha) else {
            return;
        };
        // The journal holds only names checked when they arrived.
        let Some(package_name) = PackageName::new(&name) else {
            tracing::error!(%name, "the journal names an interrupted package with an invalid name; it is not taken again");
            return;
        };
        let stored = match self.archive.check(sha) {
            Ok(stored) => stored,
            Err(e) => {
                self.event(
                    EventKind::Warning,
                    Some((sha, &name)),
                    json!({"warning": format!(
                        "processing of {name} was interrupted, and its archived copy cannot \
                         be read to take it again: {e}; it is taken when its channel delivers \
                         it again"
                    ), "fault": Fault::Ours}),
                );
                self.set_outcome(sha, PackageState::Failed);
                return;
            }
        };
        tracing::warn!(%name, "processing was interrupted by a stop of the server; taking it again");
        self.event(
            EventKind::Warning,
            Some((sha, &name)),
            json!({"warning": format!(
                "processing of {name} was interrupted by a stop of the server; it is taken \
                 again from the archive, or set aside if it was interrupted before"
            )}),
        );
        let received = Received {
            hashed: None,
            name: package_name,
            sidecar: self.archive.read_evidence(&stored.path, "sha256"),
            signature: self.archive.read_evidence(&stored.path, "minisig"),
            path: stored.path.clone(),
            channel: Channel::Recovery,
            origin: None,
            received_at: first_received,
        };
        let outcome = self.process(Job {
            received: &received,
            stored,
            force: false,
        });
        log_outcome(&received.name, &outcome);
    }

    /// Pending copies left by a crash: one received but not yet begun is taken again; one
    /// whose outcome was journaled joins the verified packages or the rejected ones; one the
    /// journal does not know (a crash between storing and journaling) waits where it is for
    /// its channel to deliver it again.
    fn file_away_pending(&self) {
        let pending = match self.archive.pending() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the pending packages");
                return;
            }
        };
        for sha in pending {
            let outcome = self.journal.package(sha).ok().flatten().map(|p| p.2);
            let moved = match outcome {
                Some(PackageState::Published | PackageState::Older | PackageState::Held) => {
                    self.archive.accept(sha).map(|_| ())
                }
                Some(PackageState::Rejected | PackageState::SetAside) => {
                    self.archive.reject(sha).map(|_| ())
                }
                Some(PackageState::Received) => {
                    self.take_again(sha);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = moved {
                tracing::error!(error = %e, %sha, "cannot file away a pending package");
            }
        }
    }

    /// Rebuilds the live site from the journal and the archive, before any package is taken.
    /// Returns the number of packages applied. If the last publication cannot be rebuilt
    /// (a damaged archive), earlier ones are tried, each failure journaled as a warning, and
    /// [`OurFaults::behind`](super::OurFaults::behind) says what is served instead until a
    /// new corte goes live.
    pub(crate) fn rebuild(&self) -> anyhow::Result<usize> {
        let pubs = self.journal.publications()?;
        self.find_unjournaled(pubs.last().map(|p| p.corte_id.as_str()));
        // The last publication and why it could not be rebuilt, and how many could not.
        let mut behind: Option<(String, String)> = None;
        let mut not_rebuilt = 0;
        let fell_back = |behind: Option<(String, String)>, serving: Option<&str>, not_rebuilt| {
            behind.map(|(last_published, error)| Behind {
                last_published,
                serving: serving.map(str::to_owned),
                not_rebuilt,
                error,
            })
        };
        for last in pubs.iter().rev() {
            match self.site_at(&pubs, last.seq) {
                Ok(site) => {
                    let time: ZonedDateTime = last
                        .corte_time
                        .parse()
                        .context("corte time in the journal")?;
                    let files = site.len();
                    self.swap(site, last, time, last.corte_source);
                    self.faults
                        .set_behind(fell_back(behind, Some(&last.corte_id), not_rebuilt));
                    self.event(
                        EventKind::Rebuilt,
                        Some((last.package, &last.name)),
                        json!({
                            "seq": last.seq, "corte": last.corte_id, "files": files,
                        }),
                    );
                    return Ok(files);
                }
                Err(e) => {
                    tracing::error!(seq = last.seq, error = %format!("{e:#}"), "cannot rebuild corte; trying the one before");
                    self.event(EventKind::Warning, Some((last.package, &last.name)), json!({
                        "warning": format!("cannot rebuild corte {} at start: {e:#}", last.corte_id),
                    }));
                    behind.get_or_insert_with(|| (last.corte_id.clone(), format!("{e:#}")));
                    not_rebuilt += 1;
                }
            }
        }
        self.faults.set_behind(fell_back(behind, None, not_rebuilt));
        Ok(0)
    }

    /// Finds the verified packages in the archive that the journal does not know, or knows
    /// only as received (it lost its last rows: its `-wal` file removed after a crash, an
    /// older copy restored), and
    /// says so: journaled as [`PackageState::Unjournaled`] with one `warning` (check
    /// `unjournaled`) naming them and what to do, and logged. None is published, moved or
    /// removed; the live corte stays the last the journal knows, `last_corte`. One listing
    /// of the archive and one query; only the packages found are looked at (their `.sha256`
    /// file, for their name).
    fn find_unjournaled(&self, last_corte: Option<&str>) {
        // A package the journal knows only as received was never verified there: the rows
        // that saw it verified, archived and perhaps published are the ones lost.
        let found = self.journal.known_packages().map(|known| {
            self.archive.verified().map(|verified| {
                verified
                    .into_iter()
                    .filter_map(|sha| match known.get(&sha) {
                        None => Some((sha, None)),
                        Some((name, Some(PackageState::Received))) => {
                            Some((sha, Some(name.clone())))
                        }
                        Some(_) => None,
                    })
                    .collect::<Vec<_>>()
            })
        });
        let mut unknown = match found {
            Ok(Ok(unknown)) if !unknown.is_empty() => unknown,
            Ok(Ok(_)) => return,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot list the archive's verified packages");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal's packages");
                return;
            }
        };
        unknown.sort();
        let found: Vec<Unjournaled> = unknown
            .into_iter()
            .map(|(sha, journaled_name)| {
                let meta = std::fs::symlink_metadata(self.archive.path_of(sha)).ok();
                Unjournaled {
                    sha256: sha,
                    name: journaled_name
                        .or_else(|| self.archived_name(sha))
                        .unwrap_or_default(),
                    size: meta.as_ref().map_or(0, std::fs::Metadata::len),
                    archived_at: meta
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| Timestamp::try_from(t).ok())
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                }
            })
            .collect();
        let named: Vec<String> = found
            .iter()
            .take(MAX_UNJOURNALED_NAMED)
            .map(|p| match p.name.as_str() {
                "" => p.sha256.to_hex(),
                name => format!("{name} ({})", p.sha256),
            })
            .collect();
        let more = match found.len() - named.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let live = last_corte.map_or_else(
            || "none: it knows no corte".to_owned(),
            |c| format!("corte {c}"),
        );
        let warning = format!(
            "{} verified package(s) in the archive are not in the journal (or only as received, \
             never verified there): it lost its last rows (its bitacora.sqlite-wal file removed \
             after a crash, or an older copy restored). They are journaled as `unjournaled`; \
             none is published or removed. The live corte is the last one the journal knows \
             ({live}), and may be older than the one served before. If the journal and its -wal \
             file are in a backup, stop the server and restore both; else put the latest corte \
             live with `difusor rollback <corte>` (its corte id, or its SHA-256 when several \
             packages have it): it is verified again from the archive and published, without \
             being delivered again (or have it delivered again, or `difusor ingest --force` \
             it). Packages: {}{more}",
            found.len(),
            named.join(", "),
        );
        tracing::warn!(packages = found.len(), "{warning}");
        let detail = json!({
            "warning": warning, "check": "unjournaled", "packages": named,
            "package_count": found.len(), "live": last_corte,
        });
        if let Err(e) = self.journal.note_unjournaled(found, detail) {
            tracing::error!(error = %e, "could not write to the journal");
        }
    }

    /// The name the `.sha256` file beside the verified package `sha` gives it, if it is one
    /// `sha256sum` line for these bytes under a valid package name.
    fn archived_name(&self, sha: Sha256) -> Option<String> {
        let text = self
            .archive
            .read_evidence(&self.archive.path_of(sha), "sha256")?
            .text()?;
        let (digest, name) = package::sidecar_single_entry(&text)?;
        (digest == sha && PackageName::new(&name).is_some()).then_some(name)
    }

    /// The site as it was when publication `seq` went live, no file's `Last-Modified`
    /// earlier than the last rollback it was built on ([`Site::modified_no_earlier_than`]).
    pub(super) fn site_at(&self, pubs: &[Publication], seq: i64) -> anyhow::Result<Site> {
        let site = self.files_at(pubs, seq)?;
        Ok(match last_rollback(pubs, seq)? {
            Some(rollback) => site.modified_no_earlier_than(rollback.live_at),
            None => site,
        })
    }

    /// The files of the site as it was when publication `seq` went live, each modified when
    /// the package that wrote it was received.
    fn files_at(&self, pubs: &[Publication], seq: i64) -> anyhow::Result<Site> {
        let steps = lineage(pubs, seq)?;
        // Site files before the last replacing site package contribute nothing to the result.
        let last_replace = steps
            .iter()
            .rposition(|p| p.build == Build::Replace && p.kind == PackageKind::Site);
        // Data packages before the last one are only listed: their unpacked files were
        // replaced by the last one's, and their zips are served from the archive as they are.
        let last_data = steps.iter().rposition(|p| p.kind == PackageKind::Data);
        let mut site = Site::new(self.site.cache.clone());
        for (i, p) in steps.iter().enumerate() {
            if p.kind == PackageKind::Site && last_replace.is_some_and(|r| i < r) {
                continue;
            }
            if p.kind == PackageKind::Data && last_data.is_some_and(|d| i < d) {
                let stored = self.archive.check(p.package)?;
                let time: ZonedDateTime =
                    p.corte_time.parse().context("corte time in the journal")?;
                site = site.list(&Listed {
                    name: &p.name,
                    sha256: p.package,
                    size: stored.size,
                    archived: self.archive.archived_file(p.package)?,
                    corte_id: &p.corte_id,
                    corte_time: &time,
                    received_at: p.received_at,
                });
                continue;
            }
            let pkg = self.reverify(p.package, &p.name)?;
            let time: ZonedDateTime = p.corte_time.parse().context("corte time in the journal")?;
            site = site.apply(&Applied {
                package: &pkg,
                archived: self.archive.archived_file(p.package)?,
                corte_id: &p.corte_id,
                corte_time: &time,
                replace: p.build == Build::Replace,
                received_at: p.received_at,
            });
        }
        Ok(site)
    }

    /// Checks an archived package's hash and opens it again with today's limits.
    ///
    /// A package that no longer verifies with the evidence beside it is checked against the
    /// journal: evidence of a kind its last verification had none of was never what it was
    /// verified with (a rejected delivery's, which an earlier version kept beside it). That
    /// file is moved to the rejected packages, the finding journaled as a `warning`, and the
    /// package verified again with what it was verified with. Evidence it was verified with
    /// that fails now (the key changed, the file was damaged) still fails it, and so does
    /// everything when the journal holds no verification of the package: nothing is guessed.
    pub(super) fn reverify(&self, sha: Sha256, name: &str) -> anyhow::Result<VerifiedPackage> {
        let failed = match self.verify_archived(sha, name, &[])? {
            Ok(pkg) => return Ok(pkg),
            Err(rejection) => rejection,
        };
        let stray = self.stray_evidence(sha);
        if stray.is_empty() {
            return Err(anyhow!(failed)).with_context(|| format!("package {name} ({sha})"));
        }
        let mut without = Vec::new();
        for (ext, verified_at) in stray {
            self.set_aside_evidence(sha, name, ext, &verified_at, &failed);
            without.push(ext);
        }
        self.verify_archived(sha, name, &without)?
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("package {name} ({sha})"))
    }

    /// Verifies the archived package `sha` as `name` with the evidence beside it but for the
    /// kinds in `without`, under the evidence policy of a start: what evidence it has is
    /// checked again, but a policy made stricter since does not unpublish it. `Err` when its
    /// copy cannot be read.
    fn verify_archived(
        &self,
        sha: Sha256,
        name: &str,
        without: &[&str],
    ) -> anyhow::Result<Result<VerifiedPackage, package::Rejection>> {
        let stored = self.archive.check(sha)?;
        let evidence = |ext| {
            (!without.contains(&ext))
                .then(|| self.archive.read_evidence(&stored.path, ext))
                .flatten()
        };
        let incoming = Incoming {
            name: name.to_owned(),
            sidecar: evidence("sha256"),
            signature: evidence("minisig"),
            path: stored.path,
            sha256: sha,
            size: stored.size,
        };
        let policy = EvidencePolicy {
            sidecar: Policy::IfPresent,
            member_list: Policy::IfPresent,
            signature: Policy::IfPresent,
            ..self.package.evidence.clone()
        };
        Ok(package::verify(&incoming, &policy, &self.package.limits))
    }

    /// The evidence files beside the verified package `sha` of kinds the journal says its last
    /// verification had none of, each with when that verification was journaled.
    fn stray_evidence(&self, sha: Sha256) -> Vec<(&'static str, String)> {
        let Ok(Some((at, evidence))) = self.journal.verified_evidence(sha) else {
            return Vec::new();
        };
        let path = self.archive.path_of(sha);
        [("sha256", "sidecar"), ("minisig", "signature")]
            .into_iter()
            .filter(|(ext, kind)| {
                evidence[kind] == "absent" && self.archive.read_evidence(&path, ext).is_some()
            })
            .map(|(ext, _)| (ext, at.clone()))
            .collect()
    }

    /// Moves the `.ext` file beside the verified package `sha`, which it was verified without
    /// (journaled at `verified_at`), to the rejected packages, and says so in the journal and
    /// the log. The file is not used either way.
    fn set_aside_evidence(
        &self,
        sha: Sha256,
        name: &str,
        ext: &str,
        verified_at: &str,
        failed: &package::Rejection,
    ) {
        let moved = match self.archive.set_aside_evidence(sha, ext) {
            Ok(kept) => format!(
                "it is moved to the rejected packages, beside {}",
                kept.display()
            ),
            Err(e) => format!("it is not used, but could not be moved away: {e}"),
        };
        let warning = format!(
            "the archived package {name} ({sha}) has a .{ext} file beside it that it was not \
             verified with: the journal says it was verified without one ({verified_at}), and \
             the file does not verify it ({failed}). It came from another delivery of the same \
             bytes (a rejected one, which an earlier version kept beside it); {moved}, and \
             the package is checked with the evidence it was verified with"
        );
        tracing::warn!(%name, %sha, %warning, "evidence a package was not verified with set aside");
        self.event(
            EventKind::Warning,
            Some((sha, name)),
            json!({"warning": warning, "check": "evidence", "file": format!("{name}.{ext}")}),
        );
    }
}
