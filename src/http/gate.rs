//! The gate: what the public sees instead of results (R4.3, R4.10).
//!
//! Two reasons close it: the embargo before `publish_start` (a Spanish page saying when the
//! preliminary results will be published, 503 with `Retry-After`), and the institute's notice
//! (`difusor notice on --text "…"`), which suspends the difusor at once and stays until
//! `difusor notice off`, across restarts (it is kept in the journal).
//!
//! # Guarantees
//! - [`Gate::closed`] is checked before anything else on every public request: when it
//!   answers, no byte of results leaves, whatever the path, method, encoding, range or
//!   validators (invariant 5). Its pages carry no ETag of a result and `Cache-Control:
//!   no-store` (as every [`page`] does), so no cache keeps them past the gate's change.
//! - Every change of the notice is announced to every [`Gate::notice_changes`] receiver
//!   once it is in force: the purge of caches in front, and the replication feed's
//!   long-polls, never wait for a poll.

use arc_swap::ArcSwapOption;
use http::{HeaderValue, Response, StatusCode, header};
use jiff::Timestamp;
use tokio::sync::watch;

use super::{BoxedBody, page};

/// Longest notice, in bytes of UTF-8: a page of text, far more than any institute's notice.
pub(crate) const MAX_NOTICE_BYTES: usize = 16 * 1024;

/// Why a notice's text cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NoticeError {
    /// Nothing but white space: the public would see an empty page instead of results.
    #[error("the notice is empty: give the institute's text (`difusor notice on --text \"…\"`)")]
    Empty,
    /// Longer than [`MAX_NOTICE_BYTES`].
    #[error("the notice is {0} bytes long, over the limit of {MAX_NOTICE_BYTES}")]
    TooLong(usize),
}

/// The text of a notice an operator puts in force, by `difusor notice` (with or without a
/// server) or the admin listener: `raw` without the white space around it, refused when
/// nothing is left or it is too long. A replica takes its primary's notice as the primary
/// put it in force (the primary applied this rule).
pub(crate) fn notice_text(raw: &str) -> Result<String, NoticeError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(NoticeError::Empty);
    }
    if text.len() > MAX_NOTICE_BYTES {
        return Err(NoticeError::TooLong(text.len()));
    }
    Ok(text.to_owned())
}

/// The gate's state, shared by the public and admin listeners.
pub(crate) struct Gate {
    /// Start of publication.
    start: Option<Timestamp>,
    /// The start as people read it (local time, Spanish).
    start_text: String,
    /// The institute's notice, when it has suspended the difusor.
    notice: ArcSwapOption<String>,
    /// How many times the notice has changed since the start.
    notice_changed: watch::Sender<u64>,
}

impl Gate {
    /// A gate opening at `start` (shown as `start_text`), with `notice` in force if any.
    pub(crate) fn new(
        start: Option<Timestamp>,
        start_text: String,
        notice: Option<String>,
    ) -> Self {
        Self {
            start,
            start_text,
            notice: ArcSwapOption::from_pointee(notice),
            notice_changed: watch::Sender::new(0),
        }
    }

    /// The response that replaces results now, if the gate is closed.
    pub(crate) fn closed(&self) -> Option<Response<BoxedBody>> {
        if let Some(start) = self.start
            && Timestamp::now() < start
        {
            let mut res = page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Resultados preliminares: aún no inicia la publicación",
                &format!(
                    "Los resultados electorales preliminares se publicarán a partir del {}.",
                    self.start_text
                ),
            );
            let wait = start.duration_since(Timestamp::now()).as_secs().max(1);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return Some(res);
        }
        let notice = self.notice.load();
        let text = notice.as_deref()?;
        Some(page(StatusCode::OK, "Aviso", text))
    }

    /// Whether results may be served now.
    pub(crate) fn is_open(&self) -> bool {
        self.start.is_none_or(|s| Timestamp::now() >= s) && self.notice.load().is_none()
    }

    /// The notice in force, if any.
    pub(crate) fn notice(&self) -> Option<String> {
        self.notice.load().as_deref().cloned()
    }

    /// Puts a notice in force (`Some`) or lifts it (`None`), at once; then tells every
    /// [`Gate::notice_changes`] receiver.
    pub(crate) fn set_notice(&self, notice: Option<String>) {
        self.notice.store(notice.map(std::sync::Arc::new));
        self.notice_changed.send_modify(|n| *n += 1);
    }

    /// A receiver told of every change of the notice from now on.
    pub(crate) fn notice_changes(&self) -> watch::Receiver<u64> {
        self.notice_changed.subscribe()
    }
}
