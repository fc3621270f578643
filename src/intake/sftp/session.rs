//! What one SFTP session did, for the journal.
//!
//! # Guarantees
//! - Each session is journaled once it ends (`sftp-session`: address, key fingerprint, user,
//!   files with their outcome, uploads left unfinished, bytes, refusals, and why it ended
//!   early, if it did).
//! - A connection dropped before authentication is journaled as `sftp-refused`, with why;
//!   one dropped before its handshake only within the bounds of [`Throttle`], the next entry
//!   saying how many were left out (`not_journaled`). So is the `sftp-session` entry of a
//!   connection that ended neither logged in nor refused a login attempt (a key or a
//!   password), whatever ended it; its log lines too.
//! - An entry's size is bounded whatever the client does: at most [`MAX_LISTED_FILES`] files
//!   (and as many unfinished uploads) and [`MAX_LISTED_REFUSALS`] refusals are listed; their
//!   counts are always exact. Refusals and unfinished uploads are logged only while they are
//!   listed, so a client sending refused requests, or uploading and removing a file, as fast
//!   as it can costs the log [`MAX_LISTED_REFUSALS`] (or [`MAX_LISTED_FILES`]) lines and one
//!   saying the rest are only counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::json;

use crate::http::refusals::Throttle;
use crate::journal::{EventKind, Journal};
use crate::publisher::Fault;

/// Most refusals listed in a session's journal entry (the count is always exact).
const MAX_LISTED_REFUSALS: usize = 32;
/// Most files listed in a session's journal entry (the count is always exact).
const MAX_LISTED_FILES: usize = 256;

/// Journals a connection dropped before authentication.
pub(super) fn refused(journal: &Journal, peer: SocketAddr, reason: &str) {
    tracing::warn!(%peer, reason, "SFTP connection refused");
    post_refused(journal, peer, reason, 0);
}

/// Journals a connection dropped before its SSH handshake under `throttle`'s bounds (any
/// address may open such connections as fast as it likes): logged as a warning when
/// journaled, at `debug` otherwise.
pub(super) fn refused_before_handshake(
    journal: &Journal,
    throttle: &Throttle,
    peer: SocketAddr,
    reason: &str,
) {
    match throttle.admit(peer.ip()) {
        Some(skipped) => {
            tracing::warn!(%peer, reason, "SFTP connection refused; more from this address within a minute are logged at debug only");
            post_refused(journal, peer, reason, skipped);
        }
        None => tracing::debug!(%peer, reason, "SFTP connection refused"),
    }
}

/// Posts an `sftp-refused` entry; `not_journaled` refusals were left out since the last one.
fn post_refused(journal: &Journal, peer: SocketAddr, reason: &str, not_journaled: u64) {
    let mut detail = json!({"address": peer.to_string(), "reason": reason});
    if not_journaled > 0 {
        detail["not_journaled"] = not_journaled.into();
    }
    journal.post(EventKind::SftpRefused, None, detail);
}

/// Journals a session's end; `ended` is why it ended early, and whose fault that was. A
/// connection that neither logged in nor was refused a login attempt is journaled and logged
/// within `never_tried`'s bounds only (at `debug` otherwise): anyone at an allowed address may
/// open such connections as fast as it likes, and none counts towards a ban.
pub(super) fn journal_session(
    journal: &Journal,
    never_tried: &Throttle,
    peer: SocketAddr,
    stats: &SessionStats,
    ended: Option<&(String, Fault)>,
) {
    let error = ended.map(|(error, _)| error.as_str());
    let not_journaled = if stats.tried_to_log_in() {
        tracing::info!(%peer, files = stats.file_count, bytes = stats.bytes, "SFTP session ended");
        0
    } else if let Some(skipped) = never_tried.admit(peer.ip()) {
        tracing::warn!(%peer, error, "SFTP connection ended without logging in; more from this address within a minute are logged at debug only");
        skipped
    } else {
        tracing::debug!(%peer, error, "SFTP connection ended without logging in");
        return;
    };
    let mut detail = json!({
        "address": peer.to_string(),
        "user": stats.user,
        "fingerprint": stats.fingerprint,
        "authenticated": stats.fingerprint.is_some(),
        "failed_auth": stats.failed_auth,
        "files": stats.files,
        "file_count": stats.file_count,
        "bytes": stats.bytes,
        "unfinished": stats.unfinished,
        "unfinished_count": stats.unfinished_count,
        "refusals": stats.refusals,
        "refusal_count": stats.refusal_count,
        "error": error,
        "fault": ended.map(|(_, fault)| fault),
    });
    if not_journaled > 0 {
        detail["not_journaled"] = not_journaled.into();
    }
    journal.post(EventKind::SftpSession, None, detail);
}

/// What one session did, for the journal.
#[derive(Debug, Clone, Default)]
pub(super) struct SessionStats {
    pub(super) user: Option<String>,
    pub(super) fingerprint: Option<String>,
    pub(super) failed_auth: u64,
    files: Vec<serde_json::Value>,
    file_count: u64,
    pub(super) bytes: u64,
    /// What the connection's writes were charged, all its `sftp` subsystems together
    /// (`sftp_max_session_bytes`; not journaled).
    pub(super) charged: u64,
    unfinished: Vec<serde_json::Value>,
    unfinished_count: u64,
    refusals: Vec<String>,
    refusal_count: u64,
    /// Files open for writing, by handle: their name and when they were opened (not
    /// journaled; the listener cuts a session holding one open past `sftp_upload_timeout`).
    pub(super) open_uploads: HashMap<String, (String, Instant)>,
}

impl SessionStats {
    /// Whether the client logged in or was refused an attempt to (a key or a password): a
    /// connection that was is journaled whatever its address did before, and one refused is
    /// a strike towards a ban.
    pub(super) fn tried_to_log_in(&self) -> bool {
        self.fingerprint.is_some() || self.failed_auth > 0
    }

    /// Notes a refused request, and logs it while the entry lists it.
    fn refusal(&mut self, what: String) {
        self.refusal_count += 1;
        if self.refusals.len() < MAX_LISTED_REFUSALS {
            tracing::warn!(refusal = %what, "SFTP request refused");
            self.refusals.push(what);
        } else if self.refusal_count == MAX_LISTED_REFUSALS as u64 + 1 {
            tracing::warn!(
                "this SFTP session's further refused requests are counted in its journal entry, \
                 not logged"
            );
        }
    }

    /// Notes an upload of `bytes` the session left unfinished, discarded, and why; logs it
    /// while the entry lists it.
    pub(super) fn unfinished(&mut self, name: &str, bytes: u64, why: &str) {
        self.unfinished_count += 1;
        if self.unfinished.len() < MAX_LISTED_FILES {
            tracing::warn!(%name, bytes, why, "an SFTP upload was left unfinished and discarded");
            self.unfinished
                .push(json!({"name": name, "bytes": bytes, "why": why}));
        } else if self.unfinished_count == MAX_LISTED_FILES as u64 + 1 {
            tracing::warn!(
                "this SFTP session's further unfinished uploads are counted in its journal \
                 entry, not logged"
            );
        }
    }

    /// Notes a file handed over, with its outcome.
    pub(super) fn file(&mut self, entry: serde_json::Value) {
        self.file_count += 1;
        if self.files.len() < MAX_LISTED_FILES {
            self.files.push(entry);
        }
    }
}

/// Resolves once a file of the session has been open for writing for `limit`, with its name.
pub(super) async fn upload_overdue(stats: &Mutex<SessionStats>, limit: Duration) -> String {
    loop {
        let oldest = with_stats(stats, |s| {
            s.open_uploads
                .values()
                .min_by_key(|(_, opened)| *opened)
                .cloned()
        });
        match oldest {
            Some((name, opened)) if opened + limit <= Instant::now() => return name,
            // Looked at again at least every second: the file may be closed meanwhile, and
            // another opened.
            Some((_, opened)) => {
                tokio::time::sleep_until(
                    (opened + limit).min(Instant::now() + Duration::from_secs(1)),
                )
                .await;
            }
            None => tokio::time::sleep(limit.min(Duration::from_secs(1))).await,
        }
    }
}

/// Notes a refused request, `what` saying which and why, in the session's entry, and logs it
/// while the entry lists it: a client sending refused requests as fast as it can costs the log
/// at most [`MAX_LISTED_REFUSALS`] lines and one more.
pub(super) fn note_refusal(stats: &Mutex<SessionStats>, what: String) {
    with_stats(stats, |s| s.refusal(what));
}

/// Runs `f` on a session's stats (still kept if a holder of the lock panicked).
pub(super) fn with_stats<R>(
    stats: &Mutex<SessionStats>,
    f: impl FnOnce(&mut SessionStats) -> R,
) -> R {
    match stats.lock() {
        Ok(mut s) => f(&mut s),
        Err(p) => f(&mut p.into_inner()),
    }
}
