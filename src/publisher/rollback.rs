//! Publishing again what an operator names: the site of an earlier corte, or a package held,
//! set aside or older, always from the verified archive and always journaled.
//!
//! The operator's text is looked up only when it is written as a corte id, a publication
//! number or a SHA-256 prefix; the journal keeps at most [`SHOWN_CHARS`] of any text it
//! refuses, with its control and bidirectional characters made visible.

use super::*;
use crate::package::is_corte_id;
use crate::peer_text::PeerText;

/// The most characters of an operator's rollback text the journal keeps.
const SHOWN_CHARS: usize = 64;

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
    /// corte, held, or set aside), laid over the live site, because an operator asked for it
    /// by corte id or SHA-256 prefix.
    fn publish_older(&self, wanted: &str) -> anyhow::Result<Outcome> {
        let Some((sha, name)) = self.journal.unpublished_package(wanted)? else {
            // The operator named something this server never had: a refusal, not a fault.
            return Ok(Outcome::Rejected {
                reason: format!(
                    "no corte {wanted:?} was published here, and no package archived without \
                     being published (older, held or set aside) matches it; nothing changed. \
                     `difusor history` lists the cortes published, by corte id, number and \
                     package"
                ),
                sha256: None,
            });
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
            json!({"corte": corte.id(), "reason": "an operator published a package that had not been published"}),
        );
        tracing::warn!(corte = %corte.id(), "unpublished package published by an operator");
        Ok(outcome)
    }
}
