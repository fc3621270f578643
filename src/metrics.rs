//! Metrics of the public site, for Prometheus (`GET /metrics` on the admin listener) and for
//! the status page's traffic chart.
//!
//! The request path only increments counters (atomics; one read-locked lookup for the
//! status and encoding pair). Everything read from elsewhere (the live corte, the journal's
//! counts, open connections) is set when the metrics are read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Minutes of traffic kept for the status page's chart.
pub(crate) const MINUTES: usize = 60;

/// The content coding of a response.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub(crate) enum Coding {
    /// As the institute sent it.
    Identity,
    /// gzip variant.
    Gzip,
    /// brotli variant.
    Br,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    encoding: Coding,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PackageLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UrlLabels {
    url: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiskLabels {
    folder: String,
}

/// One disk of the data folder's folders at scrape time.
pub(crate) struct DiskSnapshot {
    /// The first of its folders.
    pub(crate) folder: String,
    /// Bytes free for difusor's user, if they can be read.
    pub(crate) free_bytes: Option<u64>,
    /// Whether received bytes are refused there for the space kept free.
    pub(crate) reserve_reached: bool,
}

/// One pulled URL at scrape time.
pub(crate) struct PullSnapshot {
    /// The URL.
    pub(crate) url: String,
    /// Failed polls in a row (0 while it works).
    pub(crate) failures: u64,
    /// Packages handed to the publisher since the start.
    pub(crate) handed_over: u64,
}

/// The clock check at scrape time.
pub(crate) struct ClockSnapshot {
    /// NTP time minus this clock's, in seconds, if a server ever answered.
    pub(crate) offset_seconds: Option<f64>,
    /// Unix time of that answer.
    pub(crate) checked_at: Option<i64>,
    /// Whether the offset is past `clock_max_offset`.
    pub(crate) exceeded: bool,
    /// systemd's `NTPSynchronized`, if known.
    pub(crate) synchronized: Option<bool>,
}

/// The clock's and syslog's gauges.
struct ClockGauges {
    offset: Gauge<f64, AtomicU64>,
    checked_at: Gauge,
    exceeded: Gauge,
    synchronized: Gauge,
    syslog_sent: Gauge,
    syslog_dropped: Gauge,
}

impl ClockGauges {
    fn register(registry: &mut Registry) -> Self {
        let g = Self {
            offset: Gauge::default(),
            checked_at: Gauge::default(),
            exceeded: Gauge::default(),
            synchronized: Gauge::default(),
            syslog_sent: Gauge::default(),
            syslog_dropped: Gauge::default(),
        };
        registry.register(
            "clock_offset_seconds",
            "NTP time minus this machine's clock at the last answer of `ntp_servers` (positive: \
             the clock is behind); NaN until one answers",
            g.offset.clone(),
        );
        registry.register(
            "clock_checked_timestamp_seconds",
            "Unix time of the last answer of `ntp_servers` (0: none yet)",
            g.checked_at.clone(),
        );
        registry.register(
            "clock_offset_exceeded",
            "1 while the clock's offset is past `clock_max_offset`",
            g.exceeded.clone(),
        );
        registry.register(
            "clock_ntp_synchronized",
            "systemd's NTPSynchronized: 1 yes, 0 no, -1 unknown",
            g.synchronized.clone(),
        );
        registry.register(
            "syslog_messages_sent",
            "Journal events the syslog collector took since the start",
            g.syslog_sent.clone(),
        );
        registry.register(
            "syslog_messages_dropped",
            "Journal events not sent to syslog (queue full, collector down) since the start",
            g.syslog_dropped.clone(),
        );
        g
    }

    fn set(&self, clock: &ClockSnapshot, syslog: Option<(u64, u64)>) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.offset.set(clock.offset_seconds.unwrap_or(f64::NAN));
        self.checked_at.set(clock.checked_at.unwrap_or(0));
        self.exceeded.set(i64::from(clock.exceeded));
        self.synchronized
            .set(clock.synchronized.map_or(-1, i64::from));
        let (sent, dropped) = syslog.unwrap_or_default();
        self.syslog_sent.set(gauge(sent));
        self.syslog_dropped.set(gauge(dropped));
    }
}

/// The ACME certificate at scrape time.
pub(crate) struct AcmeSnapshot {
    /// Unix time its certificate expires, once there is one.
    pub(crate) certificate_expiry: Option<i64>,
    /// Failed attempts in a row (0 while it works).
    pub(crate) consecutive_failures: u64,
    /// Failed attempts since the start.
    pub(crate) failures_total: u64,
}

/// Values read from elsewhere at scrape time.
pub(crate) struct Snapshot {
    /// Unix time of the live corte, if any.
    pub(crate) corte_time: Option<i64>,
    /// Seconds from corte time to going live, of the live corte.
    pub(crate) lag_seconds: Option<f64>,
    /// Packages received, rejected, published, held, set aside and unjournaled (journal
    /// counts).
    pub(crate) packages: [(&'static str, i64); 6],
    /// Bytes the live site holds in memory.
    pub(crate) site_bytes: u64,
    /// Open public connections.
    pub(crate) open_connections: usize,
    /// Public connections that gave way to new ones at a cap, since the start.
    pub(crate) connections_evicted: u64,
    /// Public connections closed at once at a cap (none could give way), since the start.
    pub(crate) connections_refused: u64,
    /// Access log lines lost.
    pub(crate) access_log_lost: u64,
    /// Whether the publisher thread runs.
    pub(crate) publisher_up: bool,
    /// Packages not taken in a row by a fault on this server's side (0 while they are).
    pub(crate) intake_failures: u64,
    /// Each pulled URL.
    pub(crate) pull: Vec<PullSnapshot>,
    /// `min_free_space`, in bytes.
    pub(crate) min_free_bytes: u64,
    /// Each disk of the data folder's folders.
    pub(crate) disks: Vec<DiskSnapshot>,
    /// The clock check.
    pub(crate) clock: ClockSnapshot,
    /// Syslog messages sent and dropped, when `syslog` is set.
    pub(crate) syslog: Option<(u64, u64)>,
    /// The ACME certificate, when `acme_domains` is set.
    pub(crate) acme: Option<AcmeSnapshot>,
}

/// All metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Counter,
    latency: Histogram,
    corte_time: Gauge,
    lag: Gauge<f64, AtomicU64>,
    packages: Family<PackageLabels, Gauge>,
    site_bytes: Gauge,
    open_connections: Gauge,
    connections_evicted: Gauge,
    connections_refused: Gauge,
    access_log_lost: Gauge,
    publisher_up: Gauge,
    intake_failures: Gauge,
    pull_failures: Family<UrlLabels, Gauge>,
    pull_packages: Family<UrlLabels, Gauge>,
    min_free: Gauge,
    free_bytes: Family<DiskLabels, Gauge>,
    reserve_reached: Family<DiskLabels, Gauge>,
    clock: ClockGauges,
    /// Registered by [`Metrics::with_acme`] only, so that servers without ACME show none.
    acme: Option<AcmeGauges>,
    traffic: Traffic,
}

/// The ACME gauges.
struct AcmeGauges {
    expiry: Gauge,
    consecutive_failures: Gauge,
    failures: Gauge,
}

impl Metrics {
    /// Metrics, registered under `difusor_`.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("difusor");
        let requests = Family::<RequestLabels, Counter>::default();
        let bytes = Counter::default();
        let latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        let corte_time = Gauge::default();
        let lag = Gauge::<f64, AtomicU64>::default();
        let packages = Family::<PackageLabels, Gauge>::default();
        let site_bytes = Gauge::default();
        let open_connections = Gauge::default();
        let connections_evicted = Gauge::default();
        let connections_refused = Gauge::default();
        let access_log_lost = Gauge::default();
        let publisher_up = Gauge::default();
        registry.register(
            "publisher_up",
            "1 while the publisher thread runs; 0 once it stopped unexpectedly (the server exits)",
            publisher_up.clone(),
        );
        let intake_failures = Gauge::default();
        registry.register(
            "intake_consecutive_failures",
            "Packages (or tries of one) not taken in a row by a fault on this server's side: a \
             full or read-only disk, a journal it cannot write (0 while packages are taken)",
            intake_failures.clone(),
        );
        let pull_failures = Family::<UrlLabels, Gauge>::default();
        let pull_packages = Family::<UrlLabels, Gauge>::default();
        registry.register(
            "pull_consecutive_failures",
            "Failed polls in a row of each pulled URL (0 while it works)",
            pull_failures.clone(),
        );
        registry.register(
            "pull_packages",
            "Packages each pulled URL handed over since the start",
            pull_packages.clone(),
        );
        let min_free = Gauge::default();
        let free_bytes = Family::<DiskLabels, Gauge>::default();
        let reserve_reached = Family::<DiskLabels, Gauge>::default();
        registry.register(
            "min_free_space_bytes",
            "Space received bytes leave free on each disk of the data folder (`min_free_space`)",
            min_free.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Bytes free for difusor's user on the disk of each folder it writes (by the first \
             folder on that disk); -1 when it cannot be read",
            free_bytes.clone(),
        );
        registry.register(
            "disk_reserve_reached",
            "1 while received packages are refused on that disk so that `min_free_space` stays \
             free",
            reserve_reached.clone(),
        );
        registry.register(
            "http_requests",
            "Public requests by status and content encoding",
            requests.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Body bytes sent to the public",
            bytes.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a public request",
            latency.clone(),
        );
        registry.register(
            "live_corte_time_seconds",
            "Unix time of the live corte",
            corte_time.clone(),
        );
        registry.register(
            "live_corte_lag_seconds",
            "Seconds from the live corte's time to its going live",
            lag.clone(),
        );
        registry.register(
            "packages",
            "Packages received, rejected and published, and held, set aside or unjournaled now",
            packages.clone(),
        );
        registry.register(
            "site_bytes",
            "Bytes the live site holds in memory: its files and their compressed variants",
            site_bytes.clone(),
        );
        registry.register(
            "open_connections",
            "Open public connections",
            open_connections.clone(),
        );
        registry.register(
            "connections_evicted",
            "Idle public connections closed to make room for new ones at a cap, since the start",
            connections_evicted.clone(),
        );
        registry.register(
            "connections_refused",
            "Public connections closed at once at a cap because none was idle, since the start",
            connections_refused.clone(),
        );
        registry.register(
            "access_log_lost_lines",
            "Access log lines lost because the writer fell behind",
            access_log_lost.clone(),
        );
        let clock = ClockGauges::register(&mut registry);
        Self {
            clock,
            registry,
            requests,
            bytes,
            latency,
            corte_time,
            lag,
            packages,
            site_bytes,
            open_connections,
            connections_evicted,
            connections_refused,
            access_log_lost,
            publisher_up,
            intake_failures,
            pull_failures,
            pull_packages,
            min_free,
            free_bytes,
            reserve_reached,
            acme: None,
            traffic: Traffic::default(),
        }
    }

    /// With the gauges of the certificate obtained over ACME (`acme_domains`).
    pub(crate) fn with_acme(mut self) -> Self {
        let gauges = AcmeGauges {
            expiry: Gauge::default(),
            consecutive_failures: Gauge::default(),
            failures: Gauge::default(),
        };
        self.registry.register(
            "acme_certificate_expiry_seconds",
            "Unix time the HTTPS certificate obtained over ACME expires (0: none yet)",
            gauges.expiry.clone(),
        );
        self.registry.register(
            "acme_consecutive_failures",
            "Failed ACME attempts in a row (0 while it works)",
            gauges.consecutive_failures.clone(),
        );
        self.registry.register(
            "acme_failures",
            "Failed ACME attempts since the start",
            gauges.failures.clone(),
        );
        self.acme = Some(gauges);
        self
    }

    /// Counts one answered public request.
    pub(crate) fn observe(&self, status: u16, encoding: Coding, bytes: u64, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { status, encoding })
            .inc();
        self.bytes.inc_by(bytes);
        self.latency.observe(elapsed.as_secs_f64());
        self.traffic.count();
    }

    /// The Prometheus text exposition, with `snapshot` applied first.
    pub(crate) fn encode(&self, snapshot: &Snapshot) -> String {
        self.corte_time.set(snapshot.corte_time.unwrap_or(0));
        self.lag.set(snapshot.lag_seconds.unwrap_or(0.0));
        for (outcome, n) in snapshot.packages {
            self.packages
                .get_or_create(&PackageLabels { outcome })
                .set(n);
        }
        self.site_bytes
            .set(i64::try_from(snapshot.site_bytes).unwrap_or(i64::MAX));
        self.open_connections
            .set(i64::try_from(snapshot.open_connections).unwrap_or(i64::MAX));
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections_evicted
            .set(gauge(snapshot.connections_evicted));
        self.connections_refused
            .set(gauge(snapshot.connections_refused));
        self.access_log_lost.set(gauge(snapshot.access_log_lost));
        self.publisher_up.set(i64::from(snapshot.publisher_up));
        self.intake_failures.set(gauge(snapshot.intake_failures));
        for p in &snapshot.pull {
            let labels = UrlLabels { url: p.url.clone() };
            self.pull_failures
                .get_or_create(&labels)
                .set(gauge(p.failures));
            self.pull_packages
                .get_or_create(&labels)
                .set(gauge(p.handed_over));
        }
        self.min_free.set(gauge(snapshot.min_free_bytes));
        for d in &snapshot.disks {
            let labels = DiskLabels {
                folder: d.folder.clone(),
            };
            self.free_bytes
                .get_or_create(&labels)
                .set(d.free_bytes.map_or(-1, gauge));
            self.reserve_reached
                .get_or_create(&labels)
                .set(i64::from(d.reserve_reached));
        }
        self.clock.set(&snapshot.clock, snapshot.syslog);
        if let (Some(gauges), Some(acme)) = (&self.acme, &snapshot.acme) {
            gauges.expiry.set(acme.certificate_expiry.unwrap_or(0));
            gauges
                .consecutive_failures
                .set(gauge(acme.consecutive_failures));
            gauges.failures.set(gauge(acme.failures_total));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    /// Requests per minute over the last [`MINUTES`] minutes, oldest first.
    pub(crate) fn traffic(&self) -> Vec<u64> {
        self.traffic.per_minute()
    }
}

/// Requests per minute in a ring of [`MINUTES`] slots.
struct Traffic {
    /// For each slot: the minute (since the Unix epoch) it counts, and the count.
    slots: [(AtomicU64, AtomicU64); MINUTES],
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| (AtomicU64::new(0), AtomicU64::new(0))),
        }
    }
}

impl Traffic {
    fn now_minute() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60)
    }

    fn count(&self) {
        let minute = Self::now_minute();
        let (stamp, count) = &self.slots[(minute % MINUTES as u64) as usize];
        if stamp.swap(minute, Ordering::Relaxed) != minute {
            // A new minute in this slot: start over. (Two requests racing here may lose a
            // count at the turn of a minute; the chart is an overview.)
            count.store(0, Ordering::Relaxed);
        }
        count.fetch_add(1, Ordering::Relaxed);
    }

    fn per_minute(&self) -> Vec<u64> {
        let now = Self::now_minute();
        (0..MINUTES as u64)
            .rev()
            .map(|ago| {
                let minute = now.saturating_sub(ago);
                let (stamp, count) = &self.slots[(minute % MINUTES as u64) as usize];
                if stamp.load(Ordering::Relaxed) == minute {
                    count.load(Ordering::Relaxed)
                } else {
                    0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_and_exposed() {
        let m = Metrics::new();
        m.observe(200, Coding::Br, 100, Duration::from_micros(300));
        m.observe(200, Coding::Br, 50, Duration::from_micros(300));
        m.observe(404, Coding::Identity, 10, Duration::from_millis(2));
        let text = m.encode(&Snapshot {
            corte_time: Some(1_717_380_900),
            lag_seconds: Some(1.5),
            packages: [
                ("received", 3),
                ("rejected", 1),
                ("published", 2),
                ("held", 1),
                ("set-aside", 0),
                ("unjournaled", 2),
            ],
            site_bytes: 4096,
            open_connections: 7,
            connections_evicted: 3,
            connections_refused: 1,
            access_log_lost: 0,
            publisher_up: true,
            intake_failures: 0,
            pull: vec![PullSnapshot {
                url: "https://prep.instituto.mx/paquetes/".to_owned(),
                failures: 4,
                handed_over: 12,
            }],
            min_free_bytes: 512 << 20,
            disks: vec![DiskSnapshot {
                folder: "/var/lib/difusor".to_owned(),
                free_bytes: Some(1 << 30),
                reserve_reached: false,
            }],
            clock: ClockSnapshot {
                offset_seconds: Some(-0.25),
                checked_at: Some(1_717_380_960),
                exceeded: false,
                synchronized: None,
            },
            syslog: Some((5, 1)),
            acme: None,
        });
        assert!(
            text.contains("difusor_clock_offset_seconds -0.25"),
            "{text}"
        );
        assert!(text.contains("difusor_clock_ntp_synchronized -1"), "{text}");
        assert!(text.contains("difusor_syslog_messages_dropped 1"), "{text}");
        assert!(
            text.contains("difusor_http_requests_total{status=\"200\",encoding=\"Br\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("difusor_http_response_body_bytes_total 160"),
            "{text}"
        );
        assert!(
            text.contains("difusor_live_corte_lag_seconds 1.5"),
            "{text}"
        );
        assert!(
            text.contains("difusor_packages{outcome=\"rejected\"} 1"),
            "{text}"
        );
        assert!(text.contains("difusor_open_connections 7"), "{text}");
        assert!(text.contains("difusor_connections_evicted 3"), "{text}");
        assert!(
            text.contains("difusor_packages{outcome=\"held\"} 1"),
            "{text}"
        );
        assert!(text.contains("difusor_site_bytes 4096"), "{text}");
        assert!(
            text.contains("difusor_packages{outcome=\"unjournaled\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("difusor_min_free_space_bytes 536870912"),
            "{text}"
        );
        assert!(
            text.contains("difusor_disk_free_bytes{folder=\"/var/lib/difusor\"} 1073741824"),
            "{text}"
        );
        assert!(
            text.contains("difusor_disk_reserve_reached{folder=\"/var/lib/difusor\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "difusor_pull_consecutive_failures{url=\"https://prep.instituto.mx/paquetes/\"} 4"
            ),
            "{text}"
        );
        assert!(
            text.contains("difusor_pull_packages{url=\"https://prep.instituto.mx/paquetes/\"} 12"),
            "{text}"
        );
        assert_eq!(m.traffic().iter().sum::<u64>(), 3);
        assert_eq!(m.traffic().len(), MINUTES);
    }
}
