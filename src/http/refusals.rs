//! Refusals of one kind (a TLS handshake, a connection that broke HTTP, a replication feed
//! request, an SFTP connection dropped before its handshake) journaled without letting a
//! flood of them flood the journal or the log.
//!
//! # Guarantees
//! - One address (an IPv4 address or an IPv6 /64, as [`super::limits`] counts them) is
//!   journaled at most once every [`EVERY`]; every refusal is still logged by the caller
//!   (at `debug`, or louder only when it was journaled, so the log is bounded too).
//! - At most [`MAX_PER_WINDOW`] refusals are journaled in any [`EVERY`], whatever addresses an
//!   attacker uses. The next one journaled says how many were not since the one before it
//!   (`not_journaled`), so the journal grows by a bounded amount per minute and still counts
//!   every refusal but those of the last minute of a flood.
//! - At most [`MAX_ADDRESSES`] addresses are remembered: past that, refusals of addresses not
//!   journaled in the last [`EVERY`] are not journaled until older ones are forgotten, so
//!   the table cannot grow without bound.
//! - Journaling never blocks: events are posted ([`Journal::post`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::limits::address_of;
use crate::journal::{EventKind, Journal};

/// How often refusals from one address are journaled at most.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// Most addresses whose last journaled refusal is remembered.
pub(crate) const MAX_ADDRESSES: usize = 4096;

/// Most refusals journaled in one [`EVERY`], all addresses together.
pub(crate) const MAX_PER_WINDOW: usize = 60;

/// The journal of one kind of refusal: `warning`s with their `check`.
pub(crate) struct Refusals {
    journal: Arc<Journal>,
    /// The `check` of the warnings journaled (`tls-handshake`, `http-protocol`, `feed-request`).
    check: &'static str,
    /// Which refusals are journaled.
    throttle: Throttle,
}

/// Which refusals of one kind are journaled, under the bounds of this module.
#[derive(Default)]
pub(crate) struct Throttle {
    recent: Mutex<Recent>,
}

/// The refusals journaled lately.
#[derive(Default)]
struct Recent {
    /// When each refused address was last journaled.
    last: HashMap<IpAddr, Instant>,
    /// When the current window of [`EVERY`] began, and how many were journaled in it.
    window: Option<(Instant, usize)>,
    /// Refusals not journaled since the last one journaled.
    skipped: u64,
}

impl Refusals {
    /// Refusals journaled into `journal` as warnings with `check`.
    pub(crate) fn new(journal: Arc<Journal>, check: &'static str) -> Self {
        Self {
            journal,
            check,
            throttle: Throttle::default(),
        }
    }

    /// Journals the refusal of `peer` (a `warning` saying `warning`, with `detail`'s fields,
    /// the check and the address), unless `peer` was journaled in the last [`EVERY`] or the
    /// table is full. Whether it was journaled.
    pub(crate) fn refused(&self, peer: IpAddr, warning: String, detail: Value) -> bool {
        let Some(skipped) = self.throttle.admit(peer) else {
            return false;
        };
        let mut event = json!({
            "check": self.check,
            "warning": warning,
            "address": peer.to_string(),
        });
        if skipped > 0 {
            event["not_journaled"] = skipped.into();
        }
        if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), detail) {
            event.extend(extra);
        }
        self.journal.post(EventKind::Warning, None, event);
        true
    }
}

impl Throttle {
    /// Whether a refusal from `peer` is journaled now: `Some` with how many were not since
    /// the last one journaled.
    pub(crate) fn admit(&self, peer: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let address = address_of(peer);
        let fresh = |at: &Instant| now.duration_since(*at) < EVERY;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.last.get(&address).is_some_and(fresh) {
            recent.skipped += 1;
            return None;
        }
        let journaled = match recent.window {
            Some((began, n)) if fresh(&began) => n,
            _ => {
                recent.window = Some((now, 0));
                0
            }
        };
        if journaled >= MAX_PER_WINDOW {
            recent.skipped += 1;
            return None;
        }
        if recent.last.len() >= MAX_ADDRESSES {
            recent.last.retain(|_, at| fresh(at));
            if recent.last.len() >= MAX_ADDRESSES {
                recent.skipped += 1;
                return None;
            }
        }
        recent.last.insert(address, now);
        if let Some((_, n)) = recent.window.as_mut() {
            *n += 1;
        }
        Some(std::mem::take(&mut recent.skipped))
    }
}
