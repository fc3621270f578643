//! Addresses that keep failing to log in to the SFTP server are shut out for a while
//! (`sftp_ban_after`, `sftp_ban_time`), across connections: each connection is already cut
//! after `sftp_max_auth_attempts`, and this stops an address from simply reconnecting.
//!
//! # Guarantees
//! - A strike is a connection that tried to authenticate and ended without succeeding.
//!   `after` strikes within `time` of the first ban the address for `time` from the last one.
//! - A successful login clears the address's strikes.
//! - Memory is bounded: at most [`MAX_TRACKED`] addresses are remembered; expired records
//!   are dropped first, and when all are live, the oldest record goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses remembered at once.
pub(crate) const MAX_TRACKED: usize = 10_000;

/// What is known of one address.
#[derive(Debug, Clone, Copy)]
struct Record {
    strikes: u64,
    first: Instant,
    banned_until: Option<Instant>,
}

/// Strikes and bans per address.
#[derive(Debug)]
pub(crate) struct Bans {
    after: u64,
    time: Duration,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Bans {
    /// Bans after `after` strikes (0: never) for `time`.
    pub(crate) fn new(after: u64, time: Duration) -> Self {
        Self {
            after,
            time,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        // The map holds plain values: a panic elsewhere cannot leave it inconsistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when `ip` is banned, if it is at `now`.
    pub(crate) fn banned_until(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.records()
            .get(&ip)
            .and_then(|r| r.banned_until)
            .filter(|until| *until > now)
    }

    /// Counts a failed connection from `ip`; returns how long it is banned from now, when
    /// this strike bans it.
    pub(crate) fn strike(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.after == 0 {
            return None;
        }
        let mut records = self.records();
        if !records.contains_key(&ip) && records.len() >= MAX_TRACKED {
            let time = self.time;
            records.retain(|_, r| {
                now.duration_since(r.first) < time || r.banned_until.is_some_and(|u| u > now)
            });
            if records.len() >= MAX_TRACKED
                && let Some(oldest) = records.iter().min_by_key(|(_, r)| r.first).map(|(k, _)| *k)
            {
                records.remove(&oldest);
            }
        }
        let record = records.entry(ip).or_insert(Record {
            strikes: 0,
            first: now,
            banned_until: None,
        });
        if now.duration_since(record.first) >= self.time
            && record.banned_until.is_none_or(|u| u <= now)
        {
            *record = Record {
                strikes: 0,
                first: now,
                banned_until: None,
            };
        }
        record.strikes += 1;
        (record.strikes >= self.after).then(|| {
            record.banned_until = Some(now + self.time);
            self.time
        })
    }

    /// Forgets `ip`'s strikes after a successful login.
    pub(crate) fn clear(&self, ip: IpAddr) {
        self.records().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));

    #[test]
    fn strikes_within_the_window_ban_and_the_ban_ends() {
        let bans = Bans::new(3, Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(bans.strike(A, t), None);
        assert_eq!(bans.strike(A, t + Duration::from_secs(1)), None);
        assert_eq!(bans.banned_until(A, t), None);
        assert_eq!(
            bans.strike(A, t + Duration::from_secs(2)),
            Some(Duration::from_secs(60))
        );
        assert!(bans.banned_until(A, t + Duration::from_secs(30)).is_some());
        assert_eq!(bans.banned_until(B, t + Duration::from_secs(30)), None);
        assert_eq!(bans.banned_until(A, t + Duration::from_secs(62)), None);
        // After the ban, strikes count afresh.
        assert_eq!(bans.strike(A, t + Duration::from_secs(63)), None);
    }

    #[test]
    fn strikes_spread_beyond_the_window_and_cleared_strikes_do_not_ban() {
        let bans = Bans::new(2, Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(bans.strike(A, t), None);
        assert_eq!(bans.strike(A, t + Duration::from_secs(61)), None);
        bans.clear(A);
        assert_eq!(bans.strike(A, t + Duration::from_secs(62)), None);
        assert!(bans.strike(A, t + Duration::from_secs(63)).is_some());
        let never = Bans::new(0, Duration::from_secs(60));
        for i in 0..10 {
            assert_eq!(never.strike(A, t + Duration::from_secs(i)), None);
        }
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let bans = Bans::new(2, Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            bans.strike(IpAddr::V4(std::net::Ipv4Addr::from(i)), t);
        }
        assert!(bans.records().len() <= MAX_TRACKED);
    }
}
