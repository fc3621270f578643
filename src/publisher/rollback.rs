//! Publishing again what an operator names: the site of an earlier corte, or a package held,
//! set aside, older, or unjournaled (found verified in the archive at a start, unknown to a
//! journal that lost its last rows), always from the verified archive and always journaled.
//!
//! What it names is looked for, in this order, among the cortes published, the packages
//! archived without being published, and the unjournaled packages; among these last, a corte
//! id that several have is refused naming them all (nothing is published on a guess), and one
//! whose name the archive does not know is refused (its corte id and name are unknown).
//!
//! The operator's text is looked up only when it is written as a corte id, a publication
//! number or a SHA-256 prefix; the journal keeps at most [`SHOWN_CHARS`] of any text it
//! refuses, with its control and bidirectional characters made visible.

use super::*;
use crate::package::is_corte_id;
use crate::peer_text::PeerText;

/// The most characters of an operator's rollback text the journal keeps.
const SHOWN_CHARS: usize = 64;

/// Most packages a refused rollback names when its text matches several.
const MAX_NAMED: usize = 10;

/// Whether `text` is written as what a rollback names: a corte id, a publication number or
/// a SHA-256 prefix of 8 to 64 hex digits.
fn names_a_corte(text: &str) -> bool {
    let all = |f: fn(&u8) -> bool| !text.is_empty() && text.bytes().all(|b| f(&b));
    is_corte_id(text)
        || (text.len() <= 19 && all(u8::is_ascii_digit))
        || ((8..=64).contains(&text.len()) && all(u8::is_ascii_hexdigit))
}

/// `text` as the journal keeps it: clipped, control characters visible.
fn shown(text: &str) -> String {
    let clipped: String = text.chars().take(SHOWN_CHARS).collect();
    PeerText(clipped).to_string()
}

impl Publisher {
    /// Publishes again the site as it was at corte `corte` (a corte id, a publication number,
    /// or a package SHA-256 prefix of at least 8 digits). The operator's request is refused,
    /// [`Outcome::Rejected`], nothing changed, and journaled (`warning`, check `rollback`),
    /// when `corte` names nothing this server has (`sha256` is then `None`) or when the
    /// package it names would take the site past `max_site_bytes` or collide with a live path
    /// ([`Site::collision_with`](crate::site::Site::collision_with); `sha256` is the
    /// package's).
    ///
    /// Text that is written as none of these is refused before anything is looked up; the
    /// journal keeps at most [`SHOWN_CHARS`] of it, its control and
    /// bidirectional characters made visible ([`PeerText`]).
    pub(crate) fn rollback(&self, corte: &str) -> Outcome {
        let outcome = if names_a_corte(corte) {
            self.rollback_inner(corte)
        } else {
            Ok(Outcome::Rejected {
                reason: "it is not a corte id (YYYYMMDD_HHMM), a publication number or a \
                         SHA-256 prefix of 8 to 64 hex digits; nothing changed. `difusor \
                         history` lists the cortes published, by corte id, number and package"
                    .to_owned(),
                sha256: None,
            })
        };
        match outcome {
            Ok(outcome) => {
                if let Outcome::Rejected { reason, sha256 } = &outcome {
                    let corte = shown(corte);
                    self.event(
                        EventKind::Warning,
                        None,
                        json!({
                            "warning": format!("rollback to \"{corte}\" refused: {reason}"),
                            "check": "rollback", "corte": corte, "sha256": sha256,
                        }),
                    );
                }
                outcome
            }
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
                fault: Fault::Ours,
            },
        }
    }

    fn rollback_inner(&self, wanted: &str) -> anyhow::Result<Outcome> {
        let pubs = self.journal.publications()?;
        let published = pubs.iter().rev().find(|p| {
            p.corte_id == wanted
                || p.seq.to_string() == wanted
                || (wanted.len() >= 8
                    && p.package.to_hex().starts_with(&wanted.to_ascii_lowercase()))
        });
        let Some(target) = published else {
            return self.publish_older(wanted);
        };
        let live_at = Timestamp::now();
        // What it brings back is modified now for visitors: their copies of what it
        // withdraws are later than the files' own receipt times.
        let site = self
            .site_at(&pubs, target.seq)?
            .modified_no_earlier_than(live_at);
        let time: ZonedDateTime = target
            .corte_time
            .parse()
            .context("corte time in the journal")?;
        let mut publication = Publication {
            build: Build::Rollback,
            base: Some(target.seq),
            live_at,
            lag_ms: 0,
            ..target.clone()
        };
        publication.seq = self.journal.record_publication(&publication)?;
        let source = target.corte_source;
        self.swap(site, &publication, time, source);
        tracing::warn!(corte = %target.corte_id, "rolled back by an operator");
        Ok(Outcome::Published {
            corte: target.corte_id.clone(),
            sha256: target.package.to_hex(),
            lag_seconds: 0.0,
        })
    }

    /// Publishes a package that was archived without being published (older than the live
    /// corte, held, set aside, or found unjournaled at a start), laid over the live site,
    /// because an operator asked for it by corte id or SHA-256 prefix. It is verified again
    /// from the archive first, as any package a rollback takes from there.
    fn publish_older(&self, wanted: &str) -> anyhow::Result<Outcome> {
        let (sha, name, reason) = match self.journal.unpublished_package(wanted)? {
            Some((sha, name)) => (
                sha,
                name,
                "an operator published a package that had not been published",
            ),
            None => match self.unjournaled_named(wanted)? {
                Ok((sha, name)) => (
                    sha,
                    name,
                    "an operator published a package the journal had lost (unjournaled)",
                ),
                Err(reason) => {
                    return Ok(Outcome::Rejected {
                        reason,
                        sha256: None,
                    });
                }
            },
        };
        let pkg = self.reverify(sha, &name)?;
        let corte = package::corte_time(&pkg, &self.package.corte, Timestamp::now())?;
        let outcome = match self.publish(&pkg, &corte, Timestamp::now())? {
            Ok(outcome) => outcome,
            Err(refused) => {
                return Ok(Outcome::Rejected {
                    reason: refused,
                    sha256: Some(sha.to_hex()),
                });
            }
        };
        self.event(
            EventKind::Rollback,
            Some((sha, &name)),
            json!({"corte": corte.id(), "reason": reason}),
        );
        tracing::warn!(corte = %corte.id(), "unpublished package published by an operator");
        Ok(outcome)
    }

    /// The one package journaled as unjournaled (found verified in the archive at a start,
    /// unknown to the journal) whose SHA-256 starts with `wanted` (at least 8 digits), or
    /// whose name gives the corte id `wanted`. `Err` is the refusal: none matches, several
    /// do (named: nothing is published on a guess), or its name is not known.
    fn unjournaled_named(&self, wanted: &str) -> anyhow::Result<Result<(Sha256, String), String>> {
        let wanted_lower = wanted.to_ascii_lowercase();
        let rules = &self.package.corte;
        let found: Vec<(Sha256, String)> = self
            .journal
            .unjournaled_packages()?
            .into_iter()
            .filter(|(sha, name)| {
                (wanted.len() >= 8 && sha.to_hex().starts_with(&wanted_lower))
                    || package::corte_id_of_name(name, rules).as_deref() == Some(wanted)
            })
            .collect();
        Ok(match found.as_slice() {
            [] => Err(format!(
                "no corte {wanted:?} was published here, and no package archived without \
                 being published (older, held, set aside or unjournaled) matches it; nothing \
                 changed. `difusor history` lists the cortes published, by corte id, number \
                 and package"
            )),
            [(sha, name)] if name.is_empty() => Err(format!(
                "the unjournaled package {sha} has no name the archive knows (no .sha256 file \
                 beside it that names it); nothing changed. Deliver it again under its name, \
                 or `difusor ingest --force` it"
            )),
            [one] => Ok(one.clone()),
            several => {
                let named: Vec<String> = several
                    .iter()
                    .take(MAX_NAMED)
                    .map(|(sha, name)| format!("{name} ({sha})"))
                    .collect();
                let more = match several.len() - named.len() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                Err(format!(
                    "{} unjournaled packages match {wanted:?}: {}{more}; nothing changed. Name \
                     the one to publish by its SHA-256 (at least 8 digits)",
                    several.len(),
                    named.join(", "),
                ))
            }
        })
    }
}
