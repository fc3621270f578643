//! The status page for operators: one self-contained HTML page (no request leaves it) that
//! refreshes itself every ten seconds.
//!
//! It shows first what must not be missed: a closed gate, an institute's notice, an open
//! gate with no `publish_start` (results public as soon as they arrive), a clock off by more
//! than `clock_max_offset`, a syslog collector that fails, a pulled URL that fails, a disk
//! down to the space kept free (`min_free_space`), or a package held or set aside for an
//! operator; then the live corte and its lag, the counts and
//! the memory the site holds, the clock, each pulled URL, the traffic of the last hour as
//! an SVG bar chart, and the history of cortes.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::status::Status;
use crate::journal::{PackageState, Publication};

/// Cortes listed in the history table.
const HISTORY: usize = 30;

/// The page's style sheet.
const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:auto;padding:1rem}\
    table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #ddd}\
    .alert{background:#b00;color:#fff;padding:.6rem}.info{background:#eef;padding:.6rem}\
    .bad{color:#b00}";

/// How a banner is shown: something to act on, or to know.
#[derive(Clone, Copy)]
enum Banner {
    Alert,
    Info,
}

impl Banner {
    fn class(self) -> &'static str {
        match self {
            Banner::Alert => "alert",
            Banner::Info => "info",
        }
    }
}

/// The page, from the server's [`Status`], the journal's publications and requests per
/// minute. Every text is escaped by the template: nothing read from a package, a peer or
/// the journal can become markup.
pub(super) fn render(state: &Status, cortes: &[Publication], traffic: &[u64]) -> String {
    let counts = &state.counts;
    let pulled = state.pull.as_deref().unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="10";
                title { "difusor status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "difusor " (state.version) }
                @for (kind, message) in banners(state) {
                    p class=(kind.class()) { (message) }
                }
                @if let Some(live) = &state.live {
                    h2 { "Live corte " (live.corte) }
                    table {
                        tr { th { "Corte time" } td { (live.corte_time_local) } }
                        tr { th { "Package" } td { (live.package_name) " " code { (live.package) } } }
                        tr { th { "Went live" } td { (live.live_at) } }
                        tr { th { "Lag" } td { (format!("{:.3}", live.lag_seconds)) " s (the calls allow 60 s)" } }
                        tr {
                            th { "Age" }
                            td {
                                (live.age_seconds) " s"
                                @if live.stale { " " strong.bad { "(older than three update intervals)" } }
                            }
                        }
                        tr { th { "Files" } td { (live.files) } }
                    }
                }
                h2 { "Packages" }
                p {
                    (counts.received) " received, " (counts.rejected) " rejected, "
                    (counts.published) " published, " (counts.held) " held, "
                    (counts.set_aside) " set aside. The site holds " (state.memory.site_bytes)
                    " of at most " (state.memory.max_site_bytes) " bytes in memory. "
                    (state.open_connections) " open connections; "
                    (state.access_log_lost_lines) " access log lines lost; "
                    (state.access_log_unlogged_429) " answers 429 not logged (past ten a second from one address)."
                }
                (clock_section(state))
                @if let Some(acme) = &state.acme {
                    h2 { "HTTPS certificate (ACME)" }
                    table {
                        tr { th { "Names" } td { (acme.domains.join(", ")) } }
                        tr {
                            th { "Directory" }
                            td { (acme.directory) " (" (serde_json::to_value(acme.challenge).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) ")" }
                        }
                        @if let Some(c) = &acme.certificate {
                            tr { th { "Serial" } td { code { (c.serial) } } }
                            tr { th { "Valid until" } td { (c.not_after) " (" (c.seconds_left / 86_400) " days left)" } }
                        }
                        tr { th { "Next attempt" } td { (acme.next_attempt_at.as_deref().unwrap_or("-")) } }
                        tr { th { "Failures in a row" } td.bad[acme.consecutive_failures > 0] { (acme.consecutive_failures) } }
                    }
                }
                @if !pulled.is_empty() {
                    h2 { "Pulled URLs" }
                    table {
                        tr { th { "URL" } th { "Last poll" } th { "Last success" } th { "Packages" } th { "Failures in a row" } }
                        @for url in pulled {
                            tr {
                                td { (url.url) }
                                td { (url.last_poll) }
                                td { (url.last_success.as_deref().unwrap_or("-")) }
                                td { (url.packages_handed_over) }
                                td.bad[url.failures > 0] { (url.failures) }
                            }
                        }
                    }
                }
                h2 { "Traffic, last hour" }
                (chart(traffic))
                h2 { "Cortes" }
                table {
                    tr { th { "#" } th { "Corte" } th { "Kind" } th { "Build" } th { "Package" } th { "Went live" } th { "Lag (s)" } }
                    @for p in cortes.iter().rev().take(HISTORY) {
                        tr {
                            td { (p.seq) }
                            td { (p.corte_id) }
                            td { (p.kind.as_str()) }
                            td { (format!("{:?}", p.build)) }
                            td { (p.name) }
                            td { (p.live_at) }
                            td { (format!("{:.3}", p.lag_ms as f64 / 1000.0)) }
                        }
                    }
                }
                p { a href="/status" { "JSON" } " · " a href="/metrics" { "metrics" } }
            }
        }
    }
    .into_string()
}

/// What must not be missed, in order: the gate, the clock, syslog, pulled URLs, ACME,
/// packages not taken by a fault of ours, packages waiting for an operator, and no corte live.
fn banners(state: &Status) -> Vec<(Banner, String)> {
    let mut out = Vec::new();
    let gate = &state.gate;
    if let Some(notice) = &gate.notice {
        out.push((
            Banner::Alert,
            format!("The institute's notice replaces the results: {notice}"),
        ));
    } else if !gate.open {
        let start = gate.publish_start.as_deref().unwrap_or("?");
        out.push((
            Banner::Info,
            format!("Embargo: results are not public before {start}."),
        ));
    }
    if let Some(warning) = gate.warning {
        out.push((Banner::Alert, format!("Warning: {warning}.")));
    }
    let clock = &state.clock;
    if let Some(warning) = &clock.warning {
        let kind = if clock.offset_exceeded {
            Banner::Alert
        } else {
            Banner::Info
        };
        out.push((kind, format!("Clock: {warning}.")));
    }
    if clock.ntp_synchronized == Some(false) {
        out.push((
            Banner::Alert,
            "Clock: systemd says this machine's clock is not synchronised (timedatectl: \
             NTPSynchronized=no)."
                .to_owned(),
        ));
    }
    if let Some(syslog) = state.syslog.as_ref().filter(|s| s.failing_since.is_some()) {
        out.push((
            Banner::Alert,
            format!(
                "Syslog: {} fails since {}: {}; {} events not sent.",
                syslog.target,
                syslog.failing_since.as_deref().unwrap_or("?"),
                syslog.error.as_deref().unwrap_or("?"),
                syslog.dropped,
            ),
        ));
    }
    let pulled = state.pull.as_deref().unwrap_or_default();
    for url in pulled.iter().filter(|u| u.failures > 0) {
        out.push((
            Banner::Alert,
            format!(
                "Pulling {} fails since {} ({} attempts): {}",
                url.url,
                url.failing_since.as_deref().unwrap_or("?"),
                url.failures,
                url.last_error.as_deref().unwrap_or("?"),
            ),
        ));
    }
    if let Some(acme) = &state.acme {
        if acme.consecutive_failures > 0 {
            out.push((
                Banner::Alert,
                format!(
                    "ACME: no certificate obtained for {} since {} ({} attempts; the one served \
                     stays): {}",
                    acme.domains.join(", "),
                    acme.failing_since.as_deref().unwrap_or("?"),
                    acme.consecutive_failures,
                    acme.last_error.as_deref().unwrap_or("?"),
                ),
            ));
        } else if acme.certificate.is_none() {
            out.push((
                Banner::Info,
                "ACME: no certificate yet; HTTPS answers once one is obtained.".to_owned(),
            ));
        }
    }
    if let Some(b) = &state.live_behind {
        let serving = b.serving.as_deref().map_or_else(
            || "no corte: none could be rebuilt".to_owned(),
            |c| format!("corte {c}, the latest that could"),
        );
        out.push((
            Banner::Alert,
            format!(
                "The live corte is not the last one published: at start {} publication(s) could \
                 not be rebuilt from the archive, the last of them corte {} ({}). Served: {}. \
                 Repair the archive from a copy and restart, or publish a new corte.",
                b.not_rebuilt, b.last_published, b.error, serving,
            ),
        ));
    }
    if state.counts.unjournaled > 0 {
        out.push((
            Banner::Alert,
            format!(
                "{} verified package(s) in the archive were not in the journal at start: it had \
                 lost its last rows (a bitacora.sqlite-wal file removed, an older copy restored), \
                 and the live corte may be older than the one served before. The journal's \
                 `unjournaled` warning names them and what to do.",
                state.counts.unjournaled,
            ),
        ));
    }
    let space = &state.free_space;
    for disk in space.disks.iter().filter(|d| d.reserve_reached) {
        out.push((
            Banner::Alert,
            format!(
                "The disk of {} is down to the {} bytes kept free (min_free_space; {} bytes \
                 free now): received packages are refused there so that the journal and the \
                 access log keep their room. Free space on it (or add some); the intake folder \
                 and pulls take theirs again by themselves, SFTP and admin uploads must be sent \
                 again.",
                disk.folders.join(", "),
                space.min_free_bytes,
                disk.free_bytes
                    .map_or_else(|| "unknown".to_owned(), |b| b.to_string()),
            ),
        ));
    }
    if let Some(f) = &state.intake_failing {
        out.push((
            Banner::Alert,
            format!(
                "Packages are not being taken, by a fault on this server's side (disk, journal), \
                 since {} ({} failures; they stay where they came from and are taken again once \
                 it is repaired). Last: {} at {}: {}",
                f.since, f.failures, f.name, f.last_at, f.error,
            ),
        ));
    }
    for waiting in &state.waiting {
        let what = if waiting.outcome == PackageState::Held {
            "is held, not published"
        } else {
            "is set aside, not published"
        };
        out.push((
            Banner::Alert,
            format!(
                "Package {} (corte {}, SHA-256 {}) {what}: {}",
                waiting.name,
                waiting.corte.as_deref().unwrap_or("unknown"),
                waiting.sha256,
                waiting.reason,
            ),
        ));
    }
    if state.live.is_none() {
        out.push((Banner::Info, "No corte is live yet.".to_owned()));
    }
    out
}

/// The clock's offset, each server's answer, systemd's view, and syslog's counts.
fn clock_section(state: &Status) -> Markup {
    let clock = &state.clock;
    let offset = match (clock.offset_seconds, &clock.server) {
        (Some(offset), Some(server)) => format!(
            "{offset:+.3} s from {server} at {} (at most {} s allowed)",
            clock.offset_checked_at.as_deref().unwrap_or("?"),
            clock.max_offset_seconds
        ),
        _ if !clock.checked => "not checked (no ntp_servers)".to_owned(),
        _ => "no answer yet".to_owned(),
    };
    let synced = match clock.ntp_synchronized {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    html! {
        h2 { "Clock" }
        table {
            tr { th { "Offset" } td.bad[clock.offset_exceeded] { (offset) } }
            tr { th { "Synchronised (systemd)" } td { (synced) } }
            @for s in &clock.servers {
                tr {
                    th { (s.server) }
                    td {
                        @match (s.offset_seconds, &s.error) {
                            (Some(offset), _) => {
                                (format!(
                                    "{offset:+.3} s, round trip {:.3} s, stratum {}",
                                    s.delay_seconds.unwrap_or_default(),
                                    s.stratum.unwrap_or_default()
                                ))
                            }
                            (None, error) => { "error: " (error.as_deref().unwrap_or("?")) }
                        }
                    }
                }
            }
            @if let Some(syslog) = &state.syslog {
                tr { th { "Syslog" } td { (syslog.target) ": " (syslog.sent) " sent, " (syslog.dropped) " not sent" } }
            }
        }
    }
}

/// Requests per minute as an SVG bar chart, oldest minute on the left.
fn chart(per_minute: &[u64]) -> Markup {
    const W: usize = 600;
    const H: usize = 120;
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let bar = W / per_minute.len().max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(W) height=(H + 20) role="img"
            aria-label="requests per minute in the last hour" {
            @for (i, &n) in per_minute.iter().enumerate() {
                @let h = (n as f64 / max as f64 * H as f64).round() as usize;
                rect x=(i * bar) y=(H - h) width=(bar.saturating_sub(1).max(1)) height=(h) fill="#2a6" {
                    title { (n) " requests" }
                }
            }
            text x="0" y=(H + 15) font-size="12" { "60 min ago" }
            text x=(W) y=(H + 15) font-size="12" text-anchor="end" { "now · peak " (max) "/min" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::admin::status::{GateStatus, Memory, PublisherStatus};
    use crate::clock::ClockStatus;
    use crate::journal::{Counts, Waiting};
    use crate::store::space::{DiskSpace, FreeSpace};

    /// A server with nothing live, its gate open without a `publish_start`.
    fn state() -> Status {
        Status {
            healthy: true,
            publisher: PublisherStatus {
                running: true,
                error: None,
            },
            live: None,
            counts: Counts::default(),
            waiting: Vec::new(),
            intake_failing: None,
            live_behind: None,
            memory: Memory {
                site_bytes: 0,
                max_site_bytes: 1,
            },
            free_space: FreeSpace {
                min_free_bytes: 512,
                reserve_reached: false,
                disks: vec![DiskSpace {
                    folders: vec!["/var/lib/difusor".to_owned()],
                    free_bytes: Some(4096),
                    pending_bytes: 0,
                    reserve_reached: false,
                    error: None,
                }],
            },
            gate: GateStatus {
                open: true,
                publish_start: None,
                publish_end: None,
                notice: None,
                warning: Some("no publish_start is set: results are public as soon as they arrive"),
            },
            started_at: String::new(),
            access_log_lost_lines: 0,
            access_log_unlogged_429: 0,
            open_connections: 0,
            max_open_connections: 1,
            connections_evicted: 0,
            connections_refused: 0,
            pull: None,
            primary: None,
            clock: ClockStatus {
                checked: false,
                offset_seconds: None,
                server: None,
                offset_checked_at: None,
                last_check: None,
                max_offset_seconds: 1.0,
                offset_exceeded: false,
                warning: None,
                servers: Vec::new(),
                ntp_synchronized: None,
            },
            syslog: None,
            acme: None,
            version: "0.1.0",
        }
    }

    #[test]
    fn the_page_warns_of_an_open_gate_without_a_start_and_draws_the_traffic() {
        let state = state();
        let mut traffic = vec![0; 60];
        traffic[59] = 10;
        traffic[58] = 5;
        let html = render(&state, &[], &traffic);
        assert!(html.contains("class=\"alert\">Warning: no publish_start is set"));
        assert!(html.contains("<svg"));
        let mut held = self::state();
        held.waiting.push(Waiting {
            sha256: "ab12".to_owned(),
            name: "20280606_2035_PREP.zip".to_owned(),
            outcome: PackageState::Held,
            at: jiff::Timestamp::UNIX_EPOCH,
            corte: Some("20280606_2035".to_owned()),
            reason: "ahead of the clock".to_owned(),
        });
        let mut full = self::state();
        full.free_space.reserve_reached = true;
        full.free_space.disks[0].reserve_reached = true;
        assert!(render(&full, &[], &traffic).contains(
            "class=\"alert\">The disk of /var/lib/difusor is down to the 512 bytes kept free"
        ));
        assert!(!html.contains("kept free"));
        assert!(render(&held, &[], &traffic).contains(
            "class=\"alert\">Package 20280606_2035_PREP.zip (corte 20280606_2035, SHA-256 ab12) \
             is held, not published: ahead of the clock"
        ));
        assert_eq!(html.matches("<rect").count(), 60);
        assert!(
            html.contains("height=\"120\" fill"),
            "the peak minute is full height"
        );
        assert!(
            html.contains("height=\"60\" fill"),
            "half the peak is half height"
        );
    }
}
