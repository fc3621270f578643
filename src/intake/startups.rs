//! SFTP connections that have not logged in yet (OpenSSH's `MaxStartups` and
//! `PerSourceMaxStartups`): counted apart from logged-in sessions (`sftp_max_sessions`), so
//! that connections which never log in cannot take the places of the institute's uploads.
//!
//! # Guarantees
//! - At most `max` connections are waiting to log in at once (`sftp_max_startups`), and at
//!   most `per_address` from one address (`sftp_max_startups_per_address`).
//! - At a limit, the oldest connection still in its SSH handshake after [`YIELD_AFTER`] gives
//!   way to the new one (its [`Startup::cut`] fires): a real client finishes the handshake in
//!   a fraction of a second, a silent connection never does. When none can give way, the new
//!   connection is refused.
//! - A place is freed when its [`Startup`] is dropped (the connection logged in or ended), or
//!   at once when it gives way.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a connection may be in its handshake before it gives way to a new one at a limit.
pub(crate) const YIELD_AFTER: Duration = Duration::from_secs(2);

/// One connection waiting to log in.
#[derive(Debug)]
struct Slot {
    id: u64,
    ip: IpAddr,
    since: Instant,
    handshake_done: bool,
    give_way: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    slots: Vec<Slot>,
}

/// The places for connections not yet logged in.
#[derive(Debug)]
pub(crate) struct Startups {
    max: usize,
    per_address: usize,
    inner: Mutex<Slots>,
}

/// A connection's place while it logs in; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Startup {
    pool: Arc<Startups>,
    id: u64,
    /// Fires when the connection must give way to a newer one.
    pub(crate) cut: oneshot::Receiver<()>,
}

impl Startups {
    /// Places for `max` connections in all and `per_address` from one address.
    pub(crate) fn new(max: usize, per_address: usize) -> Self {
        Self {
            max,
            per_address,
            inner: Mutex::new(Slots::default()),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or why there is none (naming the setting).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Startup, String> {
        let mut inner = self.slots();
        if inner.slots.iter().filter(|s| s.ip == ip).count() >= self.per_address
            && !give_way(&mut inner.slots, now, Some(ip))
        {
            return Err(format!(
                "{} connections from this address are already logging in \
                 (sftp_max_startups_per_address)",
                self.per_address
            ));
        }
        if inner.slots.len() >= self.max && !give_way(&mut inner.slots, now, None) {
            return Err(format!(
                "{} connections are already logging in (sftp_max_startups)",
                self.max
            ));
        }
        let (tx, rx) = oneshot::channel();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.slots.push(Slot {
            id,
            ip,
            since: now,
            handshake_done: false,
            give_way: Some(tx),
        });
        Ok(Startup {
            pool: self.clone(),
            id,
            cut: rx,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots().slots.len()
    }
}

/// Frees the place of the oldest connection (from `ip`, if given) still in its handshake
/// after [`YIELD_AFTER`], telling it to go; whether there was one.
fn give_way(slots: &mut Vec<Slot>, now: Instant, ip: Option<IpAddr>) -> bool {
    let oldest = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.handshake_done && ip.is_none_or(|ip| s.ip == ip))
        .filter(|(_, s)| now.saturating_duration_since(s.since) >= YIELD_AFTER)
        .min_by_key(|(_, s)| s.since)
        .map(|(i, _)| i);
    let Some(i) = oldest else {
        return false;
    };
    let mut slot = slots.swap_remove(i);
    if let Some(tx) = slot.give_way.take() {
        let _ = tx.send(());
    }
    true
}

impl Startup {
    /// The SSH handshake is over: from now on this connection never gives way (the login
    /// time limit still applies).
    pub(crate) fn handshake_done(&self) {
        let mut inner = self.pool.slots();
        if let Some(slot) = inner.slots.iter_mut().find(|s| s.id == self.id) {
            slot.handshake_done = true;
        }
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        self.pool.slots().slots.retain(|s| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));

    #[test]
    fn one_address_cannot_take_every_place() {
        let pool = Arc::new(Startups::new(4, 2));
        let t = Instant::now();
        let a1 = pool.admit(A, t).unwrap();
        let _a2 = pool.admit(A, t).unwrap();
        // Too young to give way: refused.
        assert!(pool.admit(A, t).unwrap_err().contains("per_address"));
        let _b = pool.admit(B, t).unwrap();
        drop(a1);
        assert_eq!(pool.len(), 2);
        let _a3 = pool.admit(A, t).unwrap();
    }

    #[test]
    fn the_oldest_silent_connection_gives_way_but_not_one_that_shook_hands() {
        let pool = Arc::new(Startups::new(2, 2));
        let t = Instant::now();
        let mut old = pool.admit(A, t).unwrap();
        let done = pool.admit(B, t + Duration::from_millis(10)).unwrap();
        done.handshake_done();
        let later = t + YIELD_AFTER + Duration::from_secs(1);
        let _new = pool.admit(B, later).unwrap();
        assert!(old.cut.try_recv().is_ok(), "the silent one was told to go");
        assert_eq!(pool.len(), 2);
        // Both left are recent or past their handshake: nobody gives way.
        assert!(
            pool.admit(A, later)
                .unwrap_err()
                .contains("sftp_max_startups")
        );
        drop(old); // its place is already free: nothing else leaves
        assert_eq!(pool.len(), 2);
    }
}
