//! A run of failed accepts on a listener (out of file descriptors, mostly).
//!
//! # Guarantees
//! - A failed accept is waited out for [`RETRY`] before the next, never spun on: the
//!   connections wait in the kernel's queue meanwhile.
//! - The run is logged when it begins, once every [`SAID_EVERY`] while it lasts (with how
//!   many accepts failed) and when it ends, not at every try (twenty a second).

use std::time::{Duration, Instant};

/// The wait before accepting again after an accept failed.
pub(crate) const RETRY: Duration = Duration::from_millis(50);

/// How often a run of failed accepts is said again while it lasts.
pub(crate) const SAID_EVERY: Duration = Duration::from_secs(60);

/// The failed accepts of one listener.
pub(crate) struct AcceptFailures {
    /// What the listener accepts, as the log names it ("visitors' connections").
    what: &'static str,
    /// Failures since the run began, and when it was last said.
    run: Option<(u64, Instant)>,
}

impl AcceptFailures {
    /// No run yet, on a listener accepting `what`.
    pub(crate) fn new(what: &'static str) -> Self {
        Self { what, run: None }
    }

    /// Notes that an accept failed with `e`, and waits [`RETRY`].
    pub(crate) async fn failed(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        let what = self.what;
        match &mut self.run {
            None => {
                tracing::error!(error = %e, "cannot accept {what} (out of open files?); they wait in the kernel's queue, tried again every {RETRY:?}");
                self.run = Some((1, now));
            }
            Some((failures, said)) => {
                *failures += 1;
                if now.duration_since(*said) >= SAID_EVERY {
                    tracing::error!(error = %e, failures = *failures, "still cannot accept {what}");
                    *said = now;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }

    /// Notes that an accept succeeded: a run of failures, if any, is over.
    pub(crate) fn recovered(&mut self) {
        if let Some((failures, _)) = self.run.take() {
            tracing::warn!(failures, "accepting {} again", self.what);
        }
    }
}
