//! The server's state as the admin listener shows it: one [`Status`] value, built once per
//! request, that `/status` serialises as JSON and the status page and `/metrics` read field
//! by field. A field renamed or removed here is a compile error in every reader, never a
//! silently empty cell.

use jiff::Timestamp;
use serde::Serialize;

use super::Admin;
use crate::acme::AcmeStatus;
use crate::clock::ClockStatus;
use crate::http::health::PrimaryReach;
use crate::intake::pull::UrlState;
use crate::journal::{Counts, Waiting};
use crate::package::CorteSource;
use crate::publisher::{Behind, Failing};
use crate::store::space::FreeSpace;
use crate::syslog::SyslogStatus;

/// What `/status` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// Whether the server can publish (its publisher runs).
    pub(crate) healthy: bool,
    /// The publisher thread.
    pub(crate) publisher: PublisherStatus,
    /// The live corte, once one is.
    pub(crate) live: Option<LiveStatus>,
    /// Packages by outcome, from the journal.
    pub(crate) counts: Counts,
    /// Packages held or set aside for an operator.
    pub(crate) waiting: Vec<Waiting>,
    /// Packages this server is failing to take because of its own side (a full or read-only
    /// disk, a journal it cannot write), since when and why; `null` while packages are taken.
    pub(crate) intake_failing: Option<Failing>,
    /// The live corte is not the last one published: the start could not rebuild the later
    /// ones from the archive (a package damaged or gone); `null` once a corte goes live.
    pub(crate) live_behind: Option<Behind>,
    /// What the live site holds in memory.
    pub(crate) memory: Memory,
    /// Free space on the disks of the data folder, the archive, the uploads in progress, the
    /// intake folder and the access logs, and whether received bytes are being refused so
    /// that `min_free_space` stays free (`reserve_reached`).
    pub(crate) free_space: FreeSpace,
    /// The publication gate.
    pub(crate) gate: GateStatus,
    /// When this server started.
    pub(crate) started_at: String,
    /// Access log lines lost because the disk could not keep up.
    pub(crate) access_log_lost_lines: u64,
    /// 429 answers not written to the access log: past the first ten a second of an address.
    pub(crate) access_log_unlogged_429: u64,
    /// Visitors' connections open now.
    pub(crate) open_connections: usize,
    /// The most visitors' connections open at once.
    pub(crate) max_open_connections: usize,
    /// Idle connections closed to make room for new ones.
    pub(crate) connections_evicted: u64,
    /// Connections refused at the cap.
    pub(crate) connections_refused: u64,
    /// Each pulled URL, when `pull_url` or `replica_of` is set.
    pub(crate) pull: Option<Vec<UrlState>>,
    /// On a replica (`replica_of`): since when its primary's state has had no answer at all
    /// (`unreachable_since`, `null` while it answers), and whether this node serves its own
    /// corte for it, healthy, not having read its primary's state since it started
    /// (`on_its_own`).
    pub(crate) primary: Option<PrimaryReach>,
    /// This machine's clock against `ntp_servers` and systemd's view of it.
    pub(crate) clock: ClockStatus,
    /// Journal events sent to syslog, when `syslog` is set.
    pub(crate) syslog: Option<SyslogStatus>,
    /// The certificate obtained over ACME, when `acme_domains` is set.
    pub(crate) acme: Option<AcmeStatus>,
    /// This program's version.
    pub(crate) version: &'static str,
}

/// The publisher thread's state.
#[derive(Debug, Serialize)]
pub(crate) struct PublisherStatus {
    /// Whether it runs.
    pub(crate) running: bool,
    /// What stopped it, if it stopped unexpectedly.
    pub(crate) error: Option<String>,
}

/// The live corte.
#[derive(Debug, Serialize)]
pub(crate) struct LiveStatus {
    /// Corte id.
    pub(crate) corte: String,
    /// Corte time, UTC.
    pub(crate) corte_time: String,
    /// Corte time in the institute's time zone.
    pub(crate) corte_time_local: String,
    /// Where the corte time came from.
    pub(crate) corte_source: CorteSource,
    /// Publication number in the journal.
    pub(crate) seq: i64,
    /// SHA-256 of the package.
    pub(crate) package: String,
    /// The package's file name.
    pub(crate) package_name: String,
    /// When the package arrived.
    pub(crate) received_at: String,
    /// When the corte went live.
    pub(crate) live_at: String,
    /// From corte time to going live.
    pub(crate) lag_seconds: f64,
    /// From corte time to now.
    pub(crate) age_seconds: i64,
    /// Older than three update intervals.
    pub(crate) stale: bool,
    /// Files the site holds.
    pub(crate) files: usize,
}

/// Memory the live site holds.
#[derive(Debug, Serialize)]
pub(crate) struct Memory {
    /// Files and compressed variants, in bytes.
    pub(crate) site_bytes: u64,
    /// `max_site_bytes`.
    pub(crate) max_site_bytes: u64,
}

/// The publication gate.
#[derive(Debug, Serialize)]
pub(crate) struct GateStatus {
    /// Whether results are public now.
    pub(crate) open: bool,
    /// `publish_start`.
    pub(crate) publish_start: Option<String>,
    /// `publish_end`.
    pub(crate) publish_end: Option<String>,
    /// The institute's notice in force, if any.
    pub(crate) notice: Option<String>,
    /// What an operator must know about the gate's settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warning: Option<&'static str>,
}

impl Status {
    /// The server's state now.
    pub(crate) async fn of(admin: &Admin) -> Self {
        let site = admin.live.load();
        let now = Timestamp::now();
        let live = site.corte().map(|c| {
            let age = now.duration_since(c.time.timestamp());
            LiveStatus {
                corte: c.id.clone(),
                corte_time: c.time.timestamp().to_string(),
                corte_time_local: c.time.to_string(),
                corte_source: c.source,
                seq: c.seq,
                package: c.package.to_hex(),
                package_name: c.package_name.clone(),
                received_at: c.received_at.to_string(),
                live_at: c.live_at.to_string(),
                lag_seconds: c.live_at.duration_since(c.time.timestamp()).as_secs_f64(),
                age_seconds: age.as_secs(),
                stale: age > admin.update_interval * 3,
                files: site.len(),
            }
        });
        let journal = admin.journal.clone();
        let (counts, waiting) =
            tokio::task::spawn_blocking(move || (journal.counts(), journal.waiting()))
                .await
                .unwrap_or_else(|_| (Ok(Counts::default()), Ok(Vec::new())));
        let (evicted, refused) = admin.limits.evicted_and_refused();
        let publisher_error = admin.health.publisher_error().map(str::to_owned);
        Self {
            healthy: publisher_error.is_none(),
            publisher: PublisherStatus {
                running: publisher_error.is_none(),
                error: publisher_error,
            },
            live,
            counts: counts.unwrap_or_default(),
            waiting: waiting.unwrap_or_default(),
            intake_failing: admin.publisher.faults().failing(),
            live_behind: admin.publisher.faults().behind(),
            memory: Memory {
                site_bytes: site.memory_bytes(),
                max_site_bytes: admin.max_site_bytes,
            },
            free_space: admin.reserve.look(),
            gate: GateStatus {
                open: admin.gate.is_open(),
                publish_start: admin.publish_start.map(|t| t.to_string()),
                publish_end: admin.publish_end.map(|t| t.to_string()),
                notice: admin.gate.notice(),
                warning: admin.publish_start.is_none().then_some(
                    "no publish_start is set: results are public as soon as they arrive",
                ),
            },
            started_at: admin.started_at.to_string(),
            access_log_lost_lines: admin.access_log.lost(),
            access_log_unlogged_429: admin.limits.refusals_unlogged(),
            open_connections: admin.limits.open_connections(),
            max_open_connections: admin.limits.max_connections(),
            connections_evicted: evicted,
            connections_refused: refused,
            pull: admin.pull.as_ref().map(|b| b.snapshot()),
            primary: admin.health.primary(),
            clock: admin.clock.status(),
            syslog: admin.syslog.as_ref().map(|s| s.status()),
            acme: admin.acme.as_ref().map(|b| b.snapshot()),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
