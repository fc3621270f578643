//! Limits on what visitors may take (R5.4, layer 7): connections overall and per address,
//! the descriptors the public side may use, and a request rate per address, with trusted
//! proxies' `X-Forwarded-For` believed.
//!
//! Timeouts (silent and slowloris clients, clients that stop reading) and header sizes are
//! enforced on each connection by [`super::serve`] and [`super::conn`]; this module owns
//! the counting.
//!
//! # Guarantees
//! - An "address" is an IPv4 address, or an IPv6 /64 (what one home or phone is given); an
//!   IPv4-mapped IPv6 peer counts as its IPv4 address. Connection caps and rates count per
//!   address.
//! - At a cap, the oldest idle connection (waiting for a first byte or a next request, no
//!   request in flight, no blocked write) gives way to the new one, as nginx reuses
//!   connections: at the per-address cap one of that address's own, at the overall cap
//!   anyone's. "Oldest" is found as a clock does (second chance): connections queue in the
//!   order they came, and one used since it was queued goes to the back instead, so finding
//!   one costs O(1) on average and requests never take a lock for it. A connection with a
//!   request in flight is never evicted; when none idle is found within [`SCAN`] of the
//!   queue, the new connection is closed at once, before any byte is read.
//! - A connection's slot is given back when it ends, however it ends ([`Permit`] is a guard),
//!   or at once when it is evicted.
//! - The public side never holds more connections than the open-file limit allows once a
//!   reserve is kept for the admin listener, the archive, the journal, the logs and SFTP
//!   ([`within_descriptors`]).
//! - One address flooding gets 429 without costing the others their share: each address has
//!   its own token bucket (GCRA), and the table forgets quiet addresses every minute. Of its
//!   429 answers, [`LOGGED_REFUSALS_PER_SECOND`] a second are logged in the access log and
//!   the others counted ([`Limits::log_refusal`]): a client sending thousands of requests a
//!   second over one HTTP/2 connection, each a few bytes, cannot fill the disk with lines.
//! - One address opening TLS connections faster than `tls_handshakes_per_address` (past a
//!   burst of `rate_burst`) has the next ones closed before their handshake, whose key
//!   exchange and signature cost the server far more than a client that sends a recorded
//!   ClientHello and computes nothing; a trusted proxy is not held to it. Its own bucket,
//!   apart from the requests'.
//! - Requests in flight beside a connection's first (HTTP/2 streams at once, up to 100 a
//!   connection) are held to `max_connections_per_address` from one address and
//!   `max_connections` in all ([`Concurrency`]), so the answers clients hold without taking
//!   them (a stream given no flow-control window keeps its answer, about 4 KB, until
//!   `send_timeout`) are bounded by the connection caps, as one request per HTTP/1.1
//!   connection is. A connection's first request in flight is never counted, so HTTP/1.1 and
//!   one request at a time over HTTP/2 touch none of these counts.
//! - At most [`archive_files`] archived files (the `/datos/` downloads) are sent at once, and
//!   at most a sixteenth of them (at least [`MIN_ARCHIVE_SHARE`]) to one address, counted
//!   as the client [`Limits::client`] names ([`ArchiveFiles`]): a client holding downloads
//!   it never takes leaves the others theirs.
//! - `X-Forwarded-For` is read only from a peer inside `trusted_proxies`, and then the
//!   client is the nearest address in the chain that is not itself a trusted proxy, read
//!   from the right and never past an entry that names no address ([`Limits::client`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use http::HeaderMap;
use ipnet::IpNet;
use tokio::sync::Semaphore;

use super::conn::Activity;
use crate::config::{Config, Invalid, networks, positive_count};

/// The 429 answers to one address that are written to the access log each second (in a
/// burst of as many); past them they are counted, in `/status`.
pub(crate) const LOGGED_REFUSALS_PER_SECOND: u32 = 10;

/// The address of one `X-Forwarded-For` entry: an IP address, bracketed or not, with or
/// without a port; `None` for anything else.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// Most queued connections one admission looks at for one to evict; those in use go to the
/// back, so the next admission goes on from there.
const SCAN: usize = 256;

/// The configured limits.
#[derive(Debug, Clone)]
pub(crate) struct LimitSettings {
    /// Most open connections in all.
    pub(crate) max_connections: usize,
    /// Most open connections from one address.
    pub(crate) max_per_address: usize,
    /// Requests per second per address (0: no rate limit).
    pub(crate) rate: u32,
    /// Requests an address may make at once above the rate, and TLS handshakes above theirs.
    pub(crate) burst: u32,
    /// New TLS connections per second per address (0: no limit).
    pub(crate) handshakes: u32,
    /// Proxies (a CDN, a load balancer) whose `X-Forwarded-For` is believed.
    pub(crate) trusted: Vec<IpNet>,
}

impl LimitSettings {
    /// The limits the settings give: `max_connections`, `max_connections_per_address` (each
    /// above zero), `rate_per_address`, `rate_burst`, `tls_handshakes_per_address` and
    /// `trusted_proxies`.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let trusted = networks(
            "trusted_proxies",
            &s.trusted_proxies,
            "10.0.0.0/8 or 192.0.2.10",
        )?;
        Ok(Self {
            max_connections: positive_count("max_connections", s.max_connections)?,
            max_per_address: positive_count(
                "max_connections_per_address",
                s.max_connections_per_address,
            )?,
            rate: u32::try_from(s.rate_per_address).unwrap_or(u32::MAX),
            burst: u32::try_from(s.rate_burst).unwrap_or(u32::MAX),
            handshakes: u32::try_from(s.tls_handshakes_per_address).unwrap_or(u32::MAX),
            trusted,
        })
    }
}

/// The address connections and requests are counted under: IPv4 as it is, IPv6 by its /64.
pub(crate) fn address_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Descriptors kept from the public listeners out of an open-file limit: a quarter of it,
/// at most 1,024, for the admin listener, the archive, the journal, the logs, SFTP and the
/// pull (which need a few dozen), and the connections being evicted or refused.
fn descriptor_reserve(limit: u64) -> u64 {
    (limit / 4).min(1024)
}

/// The archived files the public listeners may keep open at once to send them (the `/datos/`
/// downloads, one permit, and one descriptor, each while its response lasts), as
/// [`within_descriptors`] decided at start: a quarter of the descriptor reserve, plus the
/// descriptors the open-file limit leaves beyond `max_connections`. An HTTP/2 client may ask
/// for 100 at once on every connection it holds; without this bound a few connections that
/// take nothing would use every descriptor the admin listener, the journal and the archive
/// need. One for the process: descriptors are the process's, whatever listener sends.
pub(crate) fn archive_files() -> &'static ArchiveFiles {
    ARCHIVE_FILES.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        ArchiveFiles::new(
            limit.map_or(MAX_ARCHIVE_FILES, |limit| archive_budget(limit, usize::MAX)),
        )
    })
}

static ARCHIVE_FILES: OnceLock<ArchiveFiles> = OnceLock::new();

/// The archived files being sent ([`archive_files`]): all of them, and each address's. One
/// address (an IPv6 /64) sends at most a share of them, [`ArchiveFiles::share`], so that a
/// client asking for hundreds it never takes (an HTTP/2 stream given no window, a connection
/// that stops reading) until `send_timeout` cuts it, and again, leaves every other visitor
/// their downloads.
pub(crate) struct ArchiveFiles {
    files: Semaphore,
    /// Most archived files sent at once, all addresses together.
    budget: usize,
    /// Most archived files sent at once to one address.
    share: usize,
    /// How many each address is being sent; only addresses being sent one are here, so at
    /// most as many as there are permits.
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// The divisor of an address's share of [`archive_files`]: a sixteenth, at least
/// [`MIN_ARCHIVE_SHARE`] (all of them when there are fewer).
const ARCHIVE_SHARE_DIVISOR: usize = 16;

/// Fewest archived files one address may be sent at once, when the budget allows it: a
/// browser downloading a few packages at once is never refused.
const MIN_ARCHIVE_SHARE: usize = 4;

impl ArchiveFiles {
    fn new(budget: usize) -> Self {
        Self {
            files: Semaphore::new(budget),
            budget,
            share: (budget / ARCHIVE_SHARE_DIVISOR)
                .max(MIN_ARCHIVE_SHARE)
                .min(budget),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A permit to send one archived file to `client` (counted under [`address_of`]), or
    /// `None` when that address is already sent its share or every file allowed is being
    /// sent.
    pub(crate) fn try_acquire(&'static self, client: IpAddr) -> Option<ArchivePermit> {
        let address = address_of(client);
        let mut held = self.lock();
        let sent = held.get(&address).copied().unwrap_or(0);
        if sent >= self.share {
            return None;
        }
        let file = self.files.try_acquire().ok()?;
        held.insert(address, sent + 1);
        Some(ArchivePermit {
            _file: file,
            address,
            owner: self,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One archived file being sent ([`ArchiveFiles::try_acquire`]): given back, to the whole
/// and to its address's share, when dropped.
pub(crate) struct ArchivePermit {
    _file: tokio::sync::SemaphorePermit<'static>,
    address: IpAddr,
    owner: &'static ArchiveFiles,
}

impl Drop for ArchivePermit {
    fn drop(&mut self) {
        let mut held = self.owner.lock();
        if let Some(sent) = held.get_mut(&self.address) {
            *sent = sent.saturating_sub(1);
            if *sent == 0 {
                held.remove(&self.address);
            }
        }
    }
}

/// Most archived files sent at once, whatever the open-file limit ([`archive_files`]).
const MAX_ARCHIVE_FILES: usize = 4_096;

/// [`archive_files`] under an open-file `limit` with at most `connections` public
/// connections: a quarter of the reserve, plus what neither the reserve nor the connections
/// take; at least 1, at most [`MAX_ARCHIVE_FILES`].
fn archive_budget(limit: u64, connections: usize) -> usize {
    let reserve = descriptor_reserve(limit);
    let spare = limit
        .saturating_sub(reserve)
        .saturating_sub(u64::try_from(connections).unwrap_or(u64::MAX));
    usize::try_from((reserve / 4).saturating_add(spare))
        .unwrap_or(MAX_ARCHIVE_FILES)
        .clamp(1, MAX_ARCHIVE_FILES)
}

/// Raises this process's open-file limit to its hard limit where the system allows it (a
/// refusal is logged); the limit it had before.
pub(crate) fn raise_open_file_limit() -> rustix::process::Rlimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum
        && let Err(e) = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            },
        )
    {
        tracing::warn!(error = %e, "cannot raise the open-file limit to its hard limit");
    }
    before
}

/// `settings` with `max_connections` lowered to what the open-file limit allows, after
/// raising that limit to its hard limit where the system allows it. Both are logged.
pub(crate) fn within_descriptors(mut settings: LimitSettings) -> LimitSettings {
    use rustix::process::{Resource, getrlimit};
    let before = raise_open_file_limit();
    let Some(limit) = getrlimit(Resource::Nofile).current else {
        tracing::info!(
            max_connections = settings.max_connections,
            "no open-file limit"
        );
        return settings;
    };
    let public = usize::try_from(limit - descriptor_reserve(limit)).unwrap_or(usize::MAX);
    tracing::info!(
        limit,
        raised_from = before.current,
        public_connections = public,
        "open-file limit"
    );
    if settings.max_connections > public {
        tracing::warn!(
            max_connections = settings.max_connections,
            lowered_to = public,
            "`max_connections` is above what the open-file limit allows, with {} descriptors \
             kept for the admin listener, archive, journal, logs and SFTP; raise the limit \
             (systemd: LimitNOFILE=) to serve more",
            descriptor_reserve(limit)
        );
        settings.max_connections = public;
    }
    let files = ARCHIVE_FILES
        .get_or_init(|| ArchiveFiles::new(archive_budget(limit, settings.max_connections)));
    tracing::info!(
        archived_files = files.budget,
        per_address = files.share,
        "archived files sent at once, at most"
    );
    settings
}

/// Live counts against the limits.
pub(crate) struct Limits {
    settings: LimitSettings,
    table: Mutex<Table>,
    /// Requests in flight beside their connection's first, all addresses together.
    alongside: AtomicUsize,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    handshakes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The 429 answers logged, per address ([`LOGGED_REFUSALS_PER_SECOND`]).
    refusals_logged: DefaultKeyedRateLimiter<IpAddr>,
    /// The 429 answers not logged since the start.
    refusals_unlogged: AtomicU64,
}

/// Open public connections, overall and by address, each in eviction order.
#[derive(Default)]
struct Table {
    open: usize,
    queue: Queue,
    by_address: HashMap<IpAddr, Address>,
    /// Connections that gave way at a cap, since the start.
    evicted: u64,
    /// Connections closed at once because no idle one could give way.
    refused: u64,
}

/// One address's open connections.
#[derive(Default)]
struct Address {
    open: usize,
    queue: Queue,
    /// Its requests in flight beside their connection's first ([`Concurrency`]).
    alongside: Arc<AtomicUsize>,
}

/// Connections in the order the clock hand meets them. Connections that closed or were
/// evicted are dropped when met, or when they outnumber the open ones.
#[derive(Default)]
struct Queue(VecDeque<Queued>);

struct Queued {
    address: IpAddr,
    activity: Arc<Activity>,
    /// When it was queued (ms on the [`Activity`] clock).
    at: u64,
}

impl Queue {
    fn push(&mut self, address: IpAddr, activity: Arc<Activity>) {
        let at = super::conn::now_ms();
        self.0.push_back(Queued {
            address,
            activity,
            at,
        });
    }

    /// Evicts the first connection idle since before it was queued; one in use (or used
    /// since) goes to the back. Looks at [`SCAN`] connections at most.
    fn evict(&mut self) -> Option<IpAddr> {
        let now = super::conn::now_ms();
        for _ in 0..SCAN.min(self.0.len()) {
            let mut q = self.0.pop_front()?;
            if q.activity.is_gone() {
                continue;
            }
            if q.activity.idle_since().is_some_and(|since| since <= q.at) && q.activity.evict() {
                return Some(q.address);
            }
            q.at = now;
            self.0.push_back(q);
        }
        None
    }

    /// Drops the connections that are gone once they outnumber the `open` ones.
    fn compact(&mut self, open: usize) {
        if self.0.len() > 2 * open + 64 {
            self.0.retain(|q| !q.activity.is_gone());
        }
    }
}

impl Table {
    /// Makes room for one connection from `address`, evicting at the caps; whether there is.
    fn room(&mut self, address: IpAddr, settings: &LimitSettings) -> bool {
        let from_address = self.by_address.get(&address).map_or(0, |a| a.open);
        if from_address >= settings.max_per_address {
            let evicted = self
                .by_address
                .get_mut(&address)
                .and_then(|a| a.queue.evict());
            match evicted {
                Some(a) => self.uncount_evicted(a),
                None => return false,
            }
        }
        if self.open >= settings.max_connections {
            match self.queue.evict() {
                Some(a) => self.uncount_evicted(a),
                None => return false,
            }
        }
        true
    }

    fn uncount_evicted(&mut self, address: IpAddr) {
        self.evicted += 1;
        self.uncount(address);
    }

    /// One connection of `address` no longer holds a slot.
    fn uncount(&mut self, address: IpAddr) {
        self.open -= 1;
        self.queue.compact(self.open);
        if let Some(a) = self.by_address.get_mut(&address) {
            a.open -= 1;
            if a.open == 0 {
                self.by_address.remove(&address);
            } else {
                a.queue.compact(a.open);
            }
        }
    }
}

/// A connection's slot and its activity; the slot is given back on drop.
pub(crate) struct Permit {
    limits: Arc<Limits>,
    address: IpAddr,
    activity: Arc<Activity>,
    /// Its address's requests in flight beside their connection's first.
    alongside: Arc<AtomicUsize>,
}

impl Permit {
    /// What the connection is doing, for its IO, requests and supervisor.
    pub(crate) fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The counts its requests in flight beside its first are held to.
    pub(crate) fn concurrency(&self) -> Concurrency {
        Concurrency {
            limits: self.limits.clone(),
            address: self.alongside.clone(),
        }
    }
}

/// The counts a connection's requests in flight beside its first (HTTP/2 streams at once)
/// are held to: its address's, at most `max_connections_per_address`, and everyone's, at
/// most `max_connections`.
#[derive(Clone)]
pub(crate) struct Concurrency {
    limits: Arc<Limits>,
    address: Arc<AtomicUsize>,
}

impl Concurrency {
    /// A place for one more request in flight beside the connection's first, held until the
    /// guard is dropped; `None` if its address or everyone together have no room.
    pub(crate) fn admit(&self) -> Option<Alongside> {
        let settings = &self.limits.settings;
        if !take(&self.address, settings.max_per_address) {
            return None;
        }
        if !take(&self.limits.alongside, settings.max_connections) {
            self.address.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Alongside(self.clone()))
    }

    /// The most requests one address may have in flight beside its connections' first.
    pub(crate) fn per_address(&self) -> usize {
        self.limits.settings.max_per_address
    }
}

/// Counts one more in `count` if it is below `max`; whether it was.
fn take(count: &AtomicUsize, max: usize) -> bool {
    if count.fetch_add(1, Ordering::AcqRel) < max {
        return true;
    }
    count.fetch_sub(1, Ordering::AcqRel);
    false
}

/// A request in flight beside its connection's first, counted until dropped.
pub(crate) struct Alongside(Concurrency);

impl Drop for Alongside {
    fn drop(&mut self) {
        self.0.address.fetch_sub(1, Ordering::AcqRel);
        self.0.limits.alongside.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut table = self.limits.lock();
        // An evicted connection gave its slot back when it was evicted.
        if !self.activity.close() {
            table.uncount(self.address);
        }
    }
}

impl Limits {
    /// Limits for a private listener (the health check, the replication feed): at most
    /// `max_connections` open, `max_per_address` from one address (its oldest idle one gives
    /// way), no rate limit and no proxy believed.
    pub(crate) fn private(max_connections: usize, max_per_address: usize) -> Arc<Self> {
        Self::new(LimitSettings {
            max_connections,
            max_per_address,
            rate: 0,
            burst: 0,
            handshakes: 0,
            trusted: Vec::new(),
        })
    }

    /// Limits with these settings.
    pub(crate) fn new(settings: LimitSettings) -> Arc<Self> {
        let per_second = |rate: u32| {
            NonZeroU32::new(rate).map(|r| {
                let burst = NonZeroU32::new(settings.burst).unwrap_or(r);
                RateLimiter::keyed(Quota::per_second(r).allow_burst(burst))
            })
        };
        Arc::new(Self {
            rate: per_second(settings.rate),
            handshakes: per_second(settings.handshakes),
            settings,
            table: Mutex::new(Table::default()),
            alongside: AtomicUsize::new(0),
            refusals_logged: RateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(LOGGED_REFUSALS_PER_SECOND).unwrap_or(NonZeroU32::MIN),
            )),
            refusals_unlogged: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds plain counts; a panic elsewhere cannot leave it half-updated.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `peer`, made by evicting an idle connection at a
    /// cap; `None` if a cap is reached and none is idle.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Permit> {
        let address = address_of(peer);
        let mut table = self.lock();
        if !table.room(address, &self.settings) {
            table.refused += 1;
            return None;
        }
        let activity = Arc::new(Activity::new());
        table.open += 1;
        table.queue.push(address, activity.clone());
        let entry = table.by_address.entry(address).or_default();
        entry.open += 1;
        entry.queue.push(address, activity.clone());
        let alongside = entry.alongside.clone();
        Some(Permit {
            limits: self.clone(),
            address,
            activity,
            alongside,
        })
    }

    /// Open connections now.
    pub(crate) fn open_connections(&self) -> usize {
        self.lock().open
    }

    /// The cap on open connections in all.
    pub(crate) fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    /// Connections evicted and refused at the caps since the start.
    pub(crate) fn evicted_and_refused(&self) -> (u64, u64) {
        let table = self.lock();
        (table.evicted, table.refused)
    }

    /// `Ok` if `client` may make a request now, else how long it should wait.
    pub(crate) fn check_rate(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check_key(&address_of(client)).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }

    /// Whether a 429 answer to `client` is to be written to the access log: the first
    /// [`LOGGED_REFUSALS_PER_SECOND`] a second of each address are; the others are counted
    /// ([`Self::refusals_unlogged`]).
    pub(crate) fn log_refusal(&self, client: IpAddr) -> bool {
        let logged = self.refusals_logged.check_key(&address_of(client)).is_ok();
        if !logged {
            self.refusals_unlogged.fetch_add(1, Ordering::Relaxed);
        }
        logged
    }

    /// The 429 answers not written to the access log since the start ([`Self::log_refusal`]).
    pub(crate) fn refusals_unlogged(&self) -> u64 {
        self.refusals_unlogged.load(Ordering::Relaxed)
    }

    /// Whether `peer` may start a TLS handshake now: within its address's handshakes per
    /// second and burst, or a trusted proxy. One that may not is counted as refused (its
    /// connection is to be closed before any byte is read).
    pub(crate) fn handshake_allowed(&self, peer: IpAddr) -> bool {
        let Some(handshakes) = &self.handshakes else {
            return true;
        };
        if self.is_trusted(peer) || handshakes.check_key(&address_of(peer)).is_ok() {
            return true;
        }
        self.lock().refused += 1;
        false
    }

    /// The TLS handshakes per second an address may start on average (0: no limit).
    pub(crate) fn handshakes_per_second(&self) -> u32 {
        self.settings.handshakes
    }

    /// Forgets addresses whose buckets are full again (call now and then).
    pub(crate) fn forget_quiet(&self) {
        for limiter in [&self.rate, &self.handshakes].into_iter().flatten() {
            limiter.retain_recent();
        }
        self.refusals_logged.retain_recent();
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// address of `X-Forwarded-For` that is not itself a trusted proxy. The chain is read
    /// from the right, one hop at a time, each entry written by the proxy on its right: an
    /// entry that names no address (`unknown`, a proxy's own token) ends the walk at the
    /// last proxy trusted, so what a client wrote to the left of it is never believed.
    /// An entry may carry a port (`203.0.113.5:4711`, `[2001:db8::5]:4711`).
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for entry in entries.into_iter().rev() {
            let Some(address) = forwarded_address(entry) else {
                break;
            };
            client = address;
            if !self.is_trusted(address) {
                break;
            }
        }
        client
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
            handshakes: rate,
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn archived_downloads_take_a_quarter_of_the_reserve_and_what_connections_leave() {
        // 16,384 descriptors, 14,000 connections: 256 + 1,360 left beyond them.
        assert_eq!(archive_budget(16_384, 14_000), 1_616);
        // systemd's LimitNOFILE=65536 with the default 50,000 connections: 256 + 14,512,
        // held to the most.
        assert_eq!(archive_budget(65_536, 50_000), MAX_ARCHIVE_FILES);
        // Connections lowered to all the limit allows: a quarter of the reserve alone.
        assert_eq!(archive_budget(65_536, 64_512), 256);
        assert_eq!(archive_budget(1_024, 768), 64);
        assert_eq!(archive_budget(3, 3), 1, "never none");
        assert_eq!(archive_budget(u64::MAX, 10), MAX_ARCHIVE_FILES);
    }

    #[test]
    fn one_address_is_sent_at_most_its_share_of_the_archived_files() {
        assert_eq!(ArchiveFiles::new(MAX_ARCHIVE_FILES).share, 256);
        assert_eq!(ArchiveFiles::new(75).share, MIN_ARCHIVE_SHARE);
        assert_eq!(ArchiveFiles::new(2).share, 2, "never more than the whole");
        let files: &'static ArchiveFiles = Box::leak(Box::new(ArchiveFiles::new(6)));
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let mut held: Vec<ArchivePermit> =
            (0..4).map(|_| files.try_acquire(one).unwrap()).collect();
        assert!(
            files.try_acquire(same_64).is_none(),
            "the /64's share is taken"
        );
        held.push(files.try_acquire(other).unwrap());
        held.push(files.try_acquire(other).unwrap());
        assert!(
            files.try_acquire("192.0.2.8".parse().unwrap()).is_none(),
            "all are taken"
        );
        held.remove(0);
        let back = files
            .try_acquire(same_64)
            .expect("one given back to the /64");
        assert!(files.try_acquire(other).is_none(), "all are taken again");
        drop((back, held));
        assert!(
            files.lock().is_empty(),
            "addresses sent nothing are forgotten"
        );
        assert_eq!(files.files.available_permits(), 6);
    }

    #[test]
    fn requests_beside_a_connections_first_are_held_per_address_and_in_all() {
        // At most 2 beside their connection's first from one address, 3 in all.
        let l = limits(0, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let (pa, pb) = (l.admit(a).unwrap(), l.admit(b).unwrap());
        let a1 = pa.concurrency().admit().unwrap();
        let a2 = pa.concurrency().admit().unwrap();
        assert!(pa.concurrency().admit().is_none(), "per address");
        let b1 = pb.concurrency().admit().unwrap();
        assert!(pb.concurrency().admit().is_none(), "in all");
        drop(a1);
        let b2 = pb.concurrency().admit().expect("a place came back");
        // Another connection of the same address shares its address's count.
        let pb2 = l.admit("2001:db8::2".parse().unwrap()).unwrap();
        assert!(pb2.concurrency().admit().is_none());
        drop((a2, b1, b2));
        let again: Vec<_> = (0..2).map(|_| pb2.concurrency().admit().unwrap()).collect();
        assert_eq!(again.len(), 2);
        assert!(pa.concurrency().admit().is_some(), "one left in all");
    }

    #[test]
    fn caps_hold_against_busy_connections_and_slots_come_back() {
        let l = limits(0, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let busy = |p: &Permit| p.activity().begin();
        let p1 = l.admit(a).unwrap();
        let p2 = l.admit(a).unwrap();
        let (_b1, _b2) = (busy(&p1), busy(&p2));
        assert!(l.admit(a).is_none(), "per address");
        let p3 = l.admit(b).unwrap();
        let _b3 = busy(&p3);
        assert!(l.admit(b).is_none(), "overall");
        assert_eq!(l.evicted_and_refused(), (0, 2));
        drop(p1);
        let _p4 = l.admit(b).expect("a slot came back");
        assert_eq!(l.open_connections(), 3);
    }

    #[test]
    fn at_a_cap_the_oldest_idle_connection_gives_way() {
        let l = limits(0, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let oldest = l.admit(a).unwrap();
        let busy = l.admit(a).unwrap();
        let _request = busy.activity().begin();
        // Per address: the address's own idle connection gives way, not the busy one.
        let newer = l.admit(a).expect("room made at the per-address cap");
        assert_eq!(oldest.activity().idle_since(), None, "evicted");
        assert!(!busy.activity().evict(), "still busy, still counted");
        assert_eq!(l.open_connections(), 2);
        // Overall: anyone's idle connections give way (here the only one).
        let b1 = l.admit(b).unwrap();
        let _request_b = b1.activity().begin();
        let _b2 = l.admit(b).expect("room made at the overall cap");
        assert_eq!(newer.activity().idle_since(), None, "evicted");
        assert_eq!(l.evicted_and_refused(), (2, 0));
        assert_eq!(l.open_connections(), 3);
        drop((oldest, newer));
        assert_eq!(
            l.open_connections(),
            3,
            "evicted slots were given back once"
        );
    }

    #[test]
    fn a_connection_used_since_it_was_queued_gets_a_second_chance() {
        let l = limits(0, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = l.admit(a).unwrap();
        let second = l.admit(a).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        drop(first.activity().begin()); // a request, answered: used since queued
        let _third = l.admit(a).expect("room made");
        assert!(first.activity().idle_since().is_some(), "kept");
        assert_eq!(second.activity().idle_since(), None, "evicted instead");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_of(ip("2001:db8:1:2::a")), ip("2001:db8:1:2::"));
        assert_eq!(
            address_of(ip("2001:db8:1:2:ffff:1:2:3")),
            address_of(ip("2001:db8:1:2::1"))
        );
        assert_ne!(address_of(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_of(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(address_of(ip("203.0.113.9")), ip("203.0.113.9"));
    }

    #[test]
    fn a_quarter_of_the_descriptors_up_to_1024_is_kept_from_the_public() {
        assert_eq!(descriptor_reserve(512), 128);
        assert_eq!(descriptor_reserve(1024), 256);
        assert_eq!(descriptor_reserve(1_048_576), 1024);
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
    fn tls_handshakes_are_held_to_a_rate_per_address_but_a_trusted_proxy_is_not() {
        let l = limits(2, &["10.9.0.0/16"]);
        let a: IpAddr = "2001:db8:1:2::a".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2::b".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.handshake_allowed(a) && l.handshake_allowed(same));
        assert!(!l.handshake_allowed(a), "one /64, one budget");
        assert!(l.handshake_allowed(b), "another address has its own");
        assert!(l.check_rate(a).is_ok(), "requests are counted apart");
        let proxy: IpAddr = "10.9.1.1".parse().unwrap();
        assert!((0..100).all(|_| l.handshake_allowed(proxy)));
        assert_eq!(l.evicted_and_refused(), (0, 1));
        let unlimited = Limits::private(3, 2);
        assert!((0..100).all(|_| unlimited.handshake_allowed(a)));
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
        // What a client wrote to the left of an entry naming no address is not believed.
        for chain in [
            "198.51.100.7, unknown",
            "198.51.100.7, unknown, 10.1.1.1",
            "198.51.100.7, _hidden",
        ] {
            h.insert("x-forwarded-for", chain.parse().unwrap());
            assert_ne!(
                l.client("10.0.0.5".parse().unwrap(), &h),
                "198.51.100.7".parse::<IpAddr>().unwrap(),
                "{chain}"
            );
        }
        for (chain, client) in [
            ("198.51.100.7, 203.0.113.5:4711", "203.0.113.5"),
            ("198.51.100.7, [2001:db8::5]:4711", "2001:db8::5"),
            ("198.51.100.7, [2001:db8::5]", "2001:db8::5"),
            ("198.51.100.7,2001:db8::6", "2001:db8::6"),
            ("198.51.100.7, 203.0.113.5, 10.2.2.2:80", "203.0.113.5"),
        ] {
            h.insert("x-forwarded-for", chain.parse().unwrap());
            assert_eq!(
                l.client("10.0.0.5".parse().unwrap(), &h),
                client.parse::<IpAddr>().unwrap(),
                "{chain}"
            );
        }
    }
}
