//! Limits on what visitors may take (R5.4, layer 7): connections overall and per address,
//! and a request rate per address, with trusted proxies' `X-Forwarded-For` believed.
//!
//! Timeouts (slowloris) and header sizes are set on the HTTP connection itself by
//! [`super::serve`]; this module owns the counting.
//!
//! # Guarantees
//! - A connection over a cap is closed at once, before any byte is read.
//! - A connection's slot is given back when it ends, however it ends ([`Permit`] is a guard).
//! - One address flooding gets 429 without costing the others their share: each address has
//!   its own token bucket (GCRA), and the table forgets quiet addresses every minute.
//! - `X-Forwarded-For` is read only from a peer inside `trusted_proxies`, and then the
//!   client is the nearest address in the chain that is not itself a trusted proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use http::HeaderMap;
use ipnet::IpNet;

/// The configured limits.
#[derive(Debug, Clone)]
pub(crate) struct LimitSettings {
    /// Most open connections in all.
    pub(crate) max_connections: usize,
    /// Most open connections from one address.
    pub(crate) max_per_address: usize,
    /// Requests per second per address (0: no rate limit).
    pub(crate) rate: u32,
    /// Requests an address may make at once above the rate.
    pub(crate) burst: u32,
    /// Proxies (a CDN, a load balancer) whose `X-Forwarded-For` is believed.
    pub(crate) trusted: Vec<IpNet>,
}

/// Live counts against the limits.
pub(crate) struct Limits {
    settings: LimitSettings,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// A connection's slot; given back on drop.
pub(crate) struct Permit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.limits.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// Limits with these settings.
    pub(crate) fn new(settings: LimitSettings) -> Arc<Self> {
        let rate = NonZeroU32::new(settings.rate).map(|r| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(r);
            RateLimiter::keyed(Quota::per_second(r).allow_burst(burst))
        });
        Arc::new(Self {
            settings,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            rate,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map holds plain counts; a panic elsewhere cannot leave it half-updated.
        self.per_address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `ip`, or `None` if a cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.settings.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut map = self.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= self.settings.max_per_address {
            drop(map);
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Permit {
            limits: self.clone(),
            ip,
        })
    }

    /// Open connections now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// `Ok` if `client` may make a request now, else how long it should wait.
    pub(crate) fn check_rate(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check_key(&client).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }

    /// Forgets addresses whose buckets are full again (call now and then).
    pub(crate) fn forget_quiet(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address of `X-Forwarded-For`.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let chain: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        chain
            .into_iter()
            .rev()
            .find(|a| !self.is_trusted(*a))
            .unwrap_or(peer)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.settings.trusted.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, trusted: &[&str]) -> Arc<Limits> {
        Limits::new(LimitSettings {
            max_connections: 3,
            max_per_address: 2,
            rate,
            burst: rate,
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn connection_caps_hold_and_slots_come_back() {
        let l = limits(0, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let _p2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "per address");
        let _p3 = l.admit(b).unwrap();
        assert!(l.admit(b).is_none(), "overall");
        drop(p1);
        let _p4 = l.admit(b).expect("a slot came back");
        assert_eq!(l.open_connections(), 3);
    }

    #[test]
    fn the_rate_is_per_address() {
        let l = limits(2, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check_rate(a).is_ok() && l.check_rate(a).is_ok());
        assert!(l.check_rate(a).is_err());
        assert!(l.check_rate(b).is_ok());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(0, &["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        assert_eq!(
            l.client("10.0.0.5".parse().unwrap(), &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            l.client("198.51.100.1".parse().unwrap(), &h),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(
            l.client("10.0.0.5".parse().unwrap(), &h),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
    }
}
