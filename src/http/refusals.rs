//! Refusals of one kind (a TLS handshake, a replication feed request) journaled as
//! `warning`s with their `check`, without letting a flood of them flood the journal.
//!
//! # Guarantees
//! - One address is journaled at most once every [`EVERY`]; every refusal is still logged by
//!   the caller.
//! - At most [`MAX_ADDRESSES`] addresses are remembered: past that, refusals of addresses not
//!   journaled in the last [`EVERY`] are not journaled until older ones are forgotten, so
//!   the table cannot grow without bound whatever addresses an attacker uses.
//! - Journaling never blocks: events are posted ([`Journal::post`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::journal::{EventKind, Journal};

/// How often refusals from one address are journaled at most.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// Most addresses whose last journaled refusal is remembered.
pub(crate) const MAX_ADDRESSES: usize = 4096;

/// The journal of one kind of refusal.
pub(crate) struct Refusals {
    journal: Arc<Journal>,
    /// The `check` of the warnings journaled (`tls-handshake`, `feed-request`).
    check: &'static str,
    /// When each refused address was last journaled.
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl Refusals {
    /// Refusals journaled into `journal` as warnings with `check`.
    pub(crate) fn new(journal: Arc<Journal>, check: &'static str) -> Self {
        Self {
            journal,
            check,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Journals the refusal of `peer` (a `warning` saying `warning`, with `detail`'s fields,
    /// the check and the address), unless `peer` was journaled in the last [`EVERY`] or the
    /// table is full.
    pub(crate) fn refused(&self, peer: IpAddr, warning: String, detail: Value) {
        if !self.journal_now(peer) {
            return;
        }
        let mut event = json!({
            "check": self.check,
            "warning": warning,
            "address": peer.to_string(),
        });
        if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), detail) {
            event.extend(extra);
        }
        self.journal.post(EventKind::Warning, None, event);
    }

    /// Whether a refusal from `peer` is journaled now.
    fn journal_now(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        let recent = |at: &Instant| now.duration_since(*at) < EVERY;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.get(&peer).is_some_and(recent) {
            return false;
        }
        if last.len() >= MAX_ADDRESSES {
            last.retain(|_, at| recent(at));
            if last.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        last.insert(peer, now);
        true
    }
}
