//! Taking one package: archive it (pending), journal its arrival, verify it, inspect a data
//! package, find its corte time, then hold it, archive it as older, or build its site and
//! swap it in; and the rejected packages' retention. See the parent module for the
//! invariants each step keeps.

use super::*;

/// Most files of one site package named in the warning that they take a download's path.
const MAX_SHADOWED_NAMED: usize = 20;

/// Most files of one data package named in the warning that none of them is a results CSV.
const MAX_UNINSPECTED_NAMED: usize = 20;

impl Publisher {
    /// Takes one package through every step; see the module documentation.
    pub(crate) fn handle(&self, r: Received) -> Outcome {
        self.take(r, false)
    }

    /// Takes one package an operator insists on: see [`Command::Force`].
    pub(crate) fn handle_forced(&self, r: Received) -> Outcome {
        self.take(r, true)
    }

    fn take(&self, r: Received, force: bool) -> Outcome {
        #[cfg(feature = "fault-injection")]
        assert!(
            r.name.as_str() != FAULT_PANIC_NAME,
            "fault injection: {FAULT_PANIC_NAME} stops the publisher"
        );
        let outcome = match self.receive(&r) {
            Ok(stored) => self.process(Job {
                received: &r,
                stored,
                force,
            }),
            Err(outcome) => outcome,
        };
        log_outcome(&r.name, &outcome);
        outcome
    }

    /// Archives a received package (pending verification) with its evidence, and journals
    /// its arrival.
    fn receive(&self, r: &Received) -> Result<Stored, Outcome> {
        let limit = self.package.limits.max_package_bytes;
        let stored = match r.hashed {
            Some(hashed) => self.archive.adopt_file(&r.path, hashed, limit),
            None => self.archive.store_file(&r.path, limit),
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(e @ ArchiveError::TooLarge { .. }) => {
                let reason = format!("{e}; the package was not stored");
                self.event(
                    EventKind::Rejected,
                    None,
                    json!({
                        "name": r.name, "channel": r.channel, "reason": reason, "fault": Fault::Sender,
                    }),
                );
                return Err(Outcome::Rejected {
                    reason,
                    sha256: None,
                });
            }
            Err(e) => return Err(self.failed(r, anyhow!(e).context("archiving the package"))),
        };
        let pkg_ref = Some((stored.sha256, r.name.as_str()));
        // A package goes on only with its arrival journaled: the journal is the evidence.
        if let Err(e) = self.journal.record(
            EventKind::Received,
            pkg_ref,
            json!({
                "channel": r.channel, "origin": r.origin, "size": stored.size,
                "received_at": r.received_at.to_string(),
            }),
        ) {
            return Err(self.failed(r, anyhow!(e).context("journaling the package's arrival")));
        }
        // Kept as the sender sent it, in place of what an earlier delivery of the same bytes
        // left: what the package is verified with. One too large to be read is not kept, and
        // refuses the package when it is verified. Bytes that verified before keep the
        // evidence they were verified with: a duplicate's is journaled ([`late`]).
        for (ext, file) in [("sha256", &r.sidecar), ("minisig", &r.signature)] {
            let bytes = file.as_ref().and_then(EvidenceFile::bytes);
            if let Err(e) = self.archive.store_evidence(&stored, ext, bytes) {
                return Err(self.failed(r, anyhow!(e).context("archiving the evidence")));
            }
        }
        if let Err(e) =
            self.journal
                .record(EventKind::Archived, pkg_ref, json!({ "path": stored.path }))
        {
            return Err(self.failed(r, anyhow!(e).context("journaling the package's arrival")));
        }
        Ok(stored)
    }

    /// Everything after the package is archived: duplicates, attempts, verification, the
    /// corte time, and its outcome.
    pub(super) fn process(&self, job: Job<'_>) -> Outcome {
        let (r, sha) = (job.received, job.stored.sha256);
        let pkg_ref = job.pkg_ref();
        let previous = match self
            .journal
            .note_package(sha, &r.name, job.stored.size, r.received_at)
        {
            Ok(p) => p,
            Err(e) => return self.failed(r, anyhow!(e)),
        };
        if matches!(
            previous,
            Some(PackageState::Published | PackageState::Older)
        ) {
            // Not verified again, but what came with it is checked and said, never dropped.
            let evidence = self.duplicate_evidence(&job);
            self.event(
                EventKind::Duplicate,
                pkg_ref,
                json!({
                    "channel": r.channel, "previous_outcome": previous, "evidence": evidence,
                }),
            );
            return Outcome::Duplicate {
                sha256: sha.to_hex(),
            };
        }
        if previous == Some(PackageState::SetAside) && !job.force {
            // Refused again, but still set aside: an operator may publish it.
            let reason = "this package was set aside earlier, after its processing was \
                          interrupted twice; an operator may publish it with `difusor rollback \
                          <SHA-256>` or `difusor ingest --force`"
                .to_owned();
            self.event(
                EventKind::Rejected,
                pkg_ref,
                json!({"channel": r.channel, "reason": reason, "fault": Fault::Sender}),
            );
            self.keep_rejected(sha);
            return Outcome::Rejected {
                reason,
                sha256: Some(sha.to_hex()),
            };
        }
        // Left `processing` by a failure of this run whose outcome could not be written, it
        // was not interrupted: counting it would set aside, as if the package killed the
        // server, a package this machine failed to take.
        let unrecorded = self.take_unrecorded(sha);
        let attempts = match self.journal.begin_processing(sha, !unrecorded) {
            Ok(n) => n,
            Err(e) => {
                if unrecorded {
                    self.note_unrecorded(sha);
                }
                return self.fail(&job, anyhow!(e));
            }
        };
        if attempts > MAX_ATTEMPTS && !job.force {
            return self.set_aside(&job, attempts - 1);
        }

        // Bytes that verified before (held) are verified again with the evidence the archive
        // keeps beside them, what they were verified with; what came with this delivery is
        // checked against them and journaled, never taken in its place.
        let (sidecar, signature) = if job.stored.path == self.archive.path_of(sha) {
            self.evidence_again(&job);
            let archived = |ext| self.archive.read_evidence(&job.stored.path, ext);
            (archived("sha256"), archived("minisig"))
        } else {
            (r.sidecar.clone(), r.signature.clone())
        };
        let incoming = Incoming {
            name: r.name.to_string(),
            path: job.stored.path.clone(),
            sha256: sha,
            size: job.stored.size,
            sidecar,
            signature,
        };
        let pkg = match package::verify(&incoming, &self.package.evidence, &self.package.limits) {
            Ok(pkg) => pkg,
            Err(rejection) if rejection.is_senders_fault() => {
                return self.reject(&job, rejection.to_string());
            }
            Err(ours) => return self.fail(&job, anyhow!(ours)),
        };
        // Nothing is published without its verification journaled.
        if let Err(e) = self.journal.record(
            EventKind::Verified,
            pkg_ref,
            json!({
                "kind": pkg.kind(),
                "files": pkg.files().len() + pkg.nested().len(),
                "evidence": pkg.evidence(),
                "evidence_summary": pkg.evidence().to_string(),
            }),
        ) {
            return self.fail(&job, anyhow!(e).context("journaling the verification"));
        }
        if pkg.kind() == PackageKind::Data
            && let Some(reason) = self.inspect(&pkg, pkg_ref)
            && self.summary.reject_inconsistent
        {
            return self.reject(&job, reason);
        }
        let corte = match package::corte_time(&pkg, &self.package.corte, r.received_at) {
            Ok(corte) => corte,
            Err(impossible) => return self.reject(&job, impossible.to_string()),
        };
        if corte.source == CorteSource::Arrival {
            self.event(
                EventKind::Warning,
                pkg_ref,
                json!({
                    "warning": "no corte time in the name or the content; the arrival time is used",
                }),
            );
        }
        let corte_id = corte.id();
        if !job.force
            && let Some(reason) = self
                .package
                .corte
                .hold_reason(&corte.time, Timestamp::now())
        {
            return self.hold(&job, &corte, reason);
        }
        let live = self.live.current();
        if let Some(current) = live.corte()
            && corte.time < current.time
        {
            if let Err(e) = self.archive.accept(sha) {
                return self.fail(&job, anyhow!(e).context("archiving the verified package"));
            }
            self.event(
                EventKind::Older,
                pkg_ref,
                json!({
                    "corte": corte_id, "live": current.id,
                }),
            );
            self.set_outcome(sha, PackageState::Older);
            return Outcome::Older {
                corte: corte_id,
                live: current.id.clone(),
                sha256: sha.to_hex(),
            };
        }

        match self.publish(&pkg, &corte, r.received_at) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(refused)) => self.reject(&job, refused),
            Err(e) => self.fail(&job, e.context("recording the publication")),
        }
    }

    /// Journals a rejection (the sender's fault) and keeps the package apart, with the
    /// rejected ones.
    fn reject(&self, job: &Job<'_>, reason: String) -> Outcome {
        let sha = job.stored.sha256;
        self.event(
            EventKind::Rejected,
            job.pkg_ref(),
            json!({
                "channel": job.received.channel, "reason": reason, "fault": Fault::Sender,
            }),
        );
        self.set_outcome(sha, PackageState::Rejected);
        self.keep_rejected(sha);
        Outcome::Rejected {
            reason,
            sha256: Some(sha.to_hex()),
        }
    }

    /// Moves a package to the rejected ones; a failure is journaled, not fatal (the package is
    /// still archived, pending, and is moved at the next start).
    fn keep_rejected(&self, sha: Sha256) {
        if let Err(e) = self.archive.reject(sha) {
            tracing::error!(error = %e, "cannot move a rejected package apart");
            self.event(
                EventKind::Warning,
                None,
                json!({"warning": format!("cannot move rejected package {sha} apart: {e}")}),
            );
        }
    }

    /// Sets a package aside whose processing was interrupted `interrupted` times in a row.
    fn set_aside(&self, job: &Job<'_>, interrupted: u32) -> Outcome {
        let sha = job.stored.sha256;
        let reason = format!(
            "processing this package was interrupted {interrupted} times in a row (the server \
             stopped or died while verifying or publishing it); it is set aside and not taken \
             again. An operator may publish it with `difusor rollback {}` or `difusor ingest \
             --force`",
            sha.to_hex().get(..12).unwrap_or_default()
        );
        self.event(
            EventKind::SetAside,
            job.pkg_ref(),
            json!({"channel": job.received.channel, "reason": reason, "attempts": interrupted}),
        );
        self.set_outcome(sha, PackageState::SetAside);
        self.keep_rejected(sha);
        Outcome::Rejected {
            reason,
            sha256: Some(sha.to_hex()),
        }
    }

    /// Keeps a verified package whose corte time is implausible, unpublished.
    fn hold(&self, job: &Job<'_>, corte: &CorteTime, reason: String) -> Outcome {
        let sha = job.stored.sha256;
        if let Err(e) = self.archive.accept(sha) {
            return self.fail(job, anyhow!(e).context("archiving the verified package"));
        }
        let corte_id = corte.id();
        let reason = format!(
            "{reason}; held, not published. If it is right, publish it with `difusor rollback \
             {corte_id}` or `difusor ingest --force`"
        );
        self.event(
            EventKind::Held,
            job.pkg_ref(),
            json!({
                "corte": corte_id, "corte_time": corte.time.to_string(),
                "corte_source": corte.source, "reason": reason,
            }),
        );
        self.set_outcome(sha, PackageState::Held);
        Outcome::Held {
            corte: corte_id,
            reason,
            sha256: sha.to_hex(),
        }
    }

    /// Removes the rejected packages kept longer than `rejected_retention`; each removal is
    /// journaled (the hash and reason of the rejection stay in the journal).
    pub(super) fn expire_rejected(&self) {
        let Some(retention) = self.rejected_retention else {
            return;
        };
        let expired = match self
            .archive
            .expire_rejected(retention, std::time::SystemTime::now())
        {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot remove expired rejected packages");
                return;
            }
        };
        for gone in expired {
            let name = self
                .journal
                .package(gone.sha256)
                .ok()
                .flatten()
                .map(|p| p.0)
                .unwrap_or_default();
            tracing::info!(%name, sha256 = %gone.sha256, "rejected package removed: its retention is over");
            self.event(
                EventKind::RejectedRemoved,
                Some((gone.sha256, &name)),
                json!({
                    "age_seconds": gone.age.as_secs(),
                    "retention_seconds": retention.as_secs(),
                }),
            );
        }
    }

    /// Inspects the results CSVs of a data package; journals a warning for each results CSV
    /// that cannot be read and for each election whose summary line contradicts its rows
    /// under every definition in scope. Returns what is wrong, if anything.
    ///
    /// A summary field named no known way is journaled as a warning too (`"check":
    /// "inspection"`), and is not returned as wrong either: it is not checked, not
    /// contradicted.
    ///
    /// A package in which no results CSV is found at all (neither read nor unreadable) is
    /// journaled as a warning of its own ([`Publisher::nothing_checked`]), and is not returned
    /// as wrong: nothing in it contradicts a summary, so `reject_inconsistent` never rejects it.
    fn inspect(&self, pkg: &VerifiedPackage, pkg_ref: Option<(Sha256, &str)>) -> Option<String> {
        let members: Vec<&package::Member> = pkg.files().iter().chain(pkg.nested()).collect();
        let report = prep::inspect_members(pkg.name(), &members, self.summary.reglas, &|_| {});
        if report.elections.is_empty() && report.unreadable.is_empty() {
            self.nothing_checked(pkg_ref, &report.other_files);
            return None;
        }
        let mut problems = Vec::new();
        for e in &report.unreadable {
            let warning = format!("a results CSV cannot be read: {e}");
            self.warn(
                pkg_ref,
                &warning,
                json!({"check": "summary", "file": e.file}),
            );
            problems.push(warning);
        }
        for e in &report.elections {
            // Not a contradiction: the fields are not checked, and the operator is told so.
            if let Some(u) = &e.unread_summary_fields {
                let warning = format!(
                    "{}: {} summary field(s) named no known way, so not checked (line {}): {}",
                    e.election(),
                    u.count,
                    u.line,
                    u.names_shown()
                );
                self.warn(
                    pkg_ref,
                    &warning,
                    json!({
                        "check": "inspection", "file": e.file,
                        "election": e.title, "unread_summary_fields": u,
                    }),
                );
            }
            let differences: Vec<_> = e.differences().collect();
            if differences.is_empty() {
                continue;
            }
            let text = differences
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join("; ");
            let warning = format!(
                "{}: the summary line contradicts the rows: {text}",
                e.election()
            );
            self.warn(
                pkg_ref,
                &warning,
                json!({
                    "check": "summary", "file": e.file,
                    "election": e.title, "fields": differences,
                }),
            );
            problems.push(warning);
        }
        (!problems.is_empty()).then(|| problems.join(" | "))
    }

    /// Journals (and logs) the warning that no results CSV was read from the data package
    /// `pkg_ref`, so that nothing in it was checked: `"check": "inspection"`, naming the first
    /// [`MAX_UNINSPECTED_NAMED`] of the files it holds (`files`) and how many there are
    /// (`file_count`). It is not a summary warning: the package is not counted as
    /// inconsistent.
    fn nothing_checked(&self, pkg_ref: Option<(Sha256, &str)>, files: &[String]) {
        let named: Vec<&str> = files
            .iter()
            .take(MAX_UNINSPECTED_NAMED)
            .map(String::as_str)
            .collect();
        let more = match files.len().saturating_sub(named.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let warning = format!(
            "no PREP results CSV was read from this data package, so nothing in it was checked: \
             none of the files it holds looks like results ({}: {}{more})",
            files.len(),
            named.join(", ")
        );
        self.warn(
            pkg_ref,
            &warning,
            json!({
                "check": "inspection", "files": named,
                "file_count": files.len(),
            }),
        );
    }

    /// Builds the site of `pkg` over the live one, keeps the package among the verified
    /// ones, journals the corte, and swaps it in. `Ok(Err(reason))` when a file of the package
    /// would sit beside a path of the live site that is the same but for letter case or
    /// Unicode normalisation ([`Site::collision_with`]), or the site would hold more than
    /// `max_site_bytes`: nothing changed.
    pub(super) fn publish(
        &self,
        pkg: &VerifiedPackage,
        corte: &CorteTime,
        received_at: Timestamp,
    ) -> anyhow::Result<Result<Outcome, String>> {
        let live = self.live.current();
        let replace = pkg.kind() == PackageKind::Site
            && (live.corte().is_none()
                || self.site.mode == SiteMode::Replace
                || (!self.site.complete_marker.is_empty()
                    && pkg.name().contains(&self.site.complete_marker)));
        if let Some((new, old)) = live.collision_with(pkg, replace) {
            let complete = match self.site.complete_marker.as_str() {
                "" => String::new(),
                marker => format!(", or send it as a whole site ({marker:?} in its name)"),
            };
            return Ok(Err(format!(
                "file {new:?} of this package would be served beside {old:?} of the live \
                 corte: the same name but for letter case or Unicode normalisation, or a file \
                 where the other is a folder. Laid over the previous files, the path visitors \
                 ask for would keep the previous corte's bytes. Send it with the live corte's \
                 names{complete}; the live corte stays"
            )));
        }
        let corte_id = corte.id();
        let archived = self
            .archive
            .archived_file(pkg.sha256())
            .context("reading the archived copy of the verified package")?;
        let site = live.apply(&Applied {
            package: pkg,
            archived,
            corte_id: &corte_id,
            corte_time: &corte.time,
            replace,
            received_at,
        });
        let bytes = site.memory_bytes();
        if bytes > self.site.max_bytes {
            return Ok(Err(format!(
                "the site with this package would hold {bytes} bytes in memory, over \
                 max_site_bytes ({}); the live corte stays",
                self.site.max_bytes
            )));
        }
        self.archive
            .accept(pkg.sha256())
            .context("archiving the verified package")?;
        let shadowed = live.shadowed_by_downloads(pkg, MAX_SHADOWED_NAMED);
        if !shadowed.is_empty() {
            let warning = format!(
                "files of this site package take the path of a download under /datos/ and \
                 are not served there (the download is): {}",
                shadowed.join(", ")
            );
            self.warn(
                Some((pkg.sha256(), pkg.name())),
                &warning,
                json!({"check": "datos", "files": shadowed}),
            );
        }
        let live_at = Timestamp::now();
        let mut publication = Publication {
            seq: 0,
            corte_id: corte_id.clone(),
            corte_time: corte.time.to_string(),
            corte_source: corte.source,
            kind: pkg.kind(),
            package: pkg.sha256(),
            name: pkg.name().to_owned(),
            build: if replace {
                Build::Replace
            } else {
                Build::Overlay
            },
            base: live.corte().map(|c| c.seq),
            received_at,
            live_at,
            lag_ms: live_at.duration_since(corte.time.timestamp()).as_millis() as i64,
        };
        publication.seq = self.journal.record_publication(&publication)?;
        self.swap(site, &publication, corte.time.clone(), corte.source);
        Ok(Ok(Outcome::Published {
            corte: corte_id,
            sha256: pkg.sha256().to_hex(),
            lag_seconds: publication.lag_ms as f64 / 1000.0,
        }))
    }

    /// Makes `site` live as the corte of `publication`.
    pub(super) fn swap(
        &self,
        site: Site,
        publication: &Publication,
        time: ZonedDateTime,
        source: CorteSource,
    ) {
        let corte = Corte {
            seq: publication.seq,
            id: publication.corte_id.clone(),
            time,
            source,
            package: publication.package,
            package_name: publication.name.clone(),
            received_at: publication.received_at,
            live_at: publication.live_at,
        };
        let mut site = site.with_corte(corte);
        let jobs = site.take_jobs();
        self.live.store(site);
        // A corte that goes live is the last one published (a start that fell back says so
        // itself once it has swapped).
        self.faults.set_behind(None);
        if let Some(compressor) = &self.compressor {
            compressor.submit(jobs);
        }
    }
}
