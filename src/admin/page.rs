//! The status page for operators: one self-contained HTML page (no request leaves it) that
//! refreshes itself every ten seconds.
//!
//! It shows first what must not be missed: a closed gate, an institute's notice, an open
//! gate with no `publish_start` (results public as soon as they arrive), a clock off by more
//! than `clock_max_offset`, a syslog collector that fails, a pulled URL that fails, or a
//! package held or set aside for an operator; then the live corte and its lag, the counts and
//! the memory the site holds, the clock, each pulled URL, the traffic of the last hour as
//! an SVG bar chart, and the history of cortes.

use std::fmt::Write as _;

use super::status::Status;
use crate::journal::{PackageState, Publication};
use crate::site::html_escape;

/// Cortes listed in the history table.
const HISTORY: usize = 30;

/// The page, from the server's [`Status`], the journal's publications and requests per
/// minute.
pub(super) fn render(state: &Status, cortes: &[Publication], traffic: &[u64]) -> String {
    let mut body = String::new();
    let gate = &state.gate;
    if let Some(notice) = &gate.notice {
        banner(
            &mut body,
            "alert",
            &format!("The institute's notice replaces the results: {notice}"),
        );
    } else if !gate.open {
        let start = gate.publish_start.as_deref().unwrap_or("?");
        banner(
            &mut body,
            "info",
            &format!("Embargo: results are not public before {start}."),
        );
    }
    if let Some(warning) = gate.warning {
        banner(&mut body, "alert", &format!("Warning: {warning}."));
    }
    let clock = &state.clock;
    if let Some(warning) = &clock.warning {
        let class = if clock.offset_exceeded {
            "alert"
        } else {
            "info"
        };
        banner(&mut body, class, &format!("Clock: {warning}."));
    }
    if clock.ntp_synchronized == Some(false) {
        banner(
            &mut body,
            "alert",
            "Clock: systemd says this machine's clock is not synchronised (timedatectl: \
             NTPSynchronized=no).",
        );
    }
    if let Some(syslog) = state.syslog.as_ref().filter(|s| s.failing_since.is_some()) {
        banner(
            &mut body,
            "alert",
            &format!(
                "Syslog: {} fails since {}: {}; {} events not sent.",
                syslog.target,
                syslog.failing_since.as_deref().unwrap_or("?"),
                syslog.error.as_deref().unwrap_or("?"),
                syslog.dropped,
            ),
        );
    }
    let pulled = state.pull.as_deref().unwrap_or_default();
    for url in pulled.iter().filter(|u| u.failures > 0) {
        banner(
            &mut body,
            "alert",
            &format!(
                "Pulling {} fails since {} ({} attempts): {}",
                url.url,
                url.failing_since.as_deref().unwrap_or("?"),
                url.failures,
                url.last_error.as_deref().unwrap_or("?"),
            ),
        );
    }
    if let Some(acme) = &state.acme {
        if acme.consecutive_failures > 0 {
            banner(
                &mut body,
                "alert",
                &format!(
                    "ACME: no certificate obtained for {} since {} ({} attempts; the one served \
                     stays): {}",
                    acme.domains.join(", "),
                    acme.failing_since.as_deref().unwrap_or("?"),
                    acme.consecutive_failures,
                    acme.last_error.as_deref().unwrap_or("?"),
                ),
            );
        } else if acme.certificate.is_none() {
            banner(
                &mut body,
                "info",
                "ACME: no certificate yet; HTTPS answers once one is obtained.",
            );
        }
    }
    for waiting in &state.waiting {
        let what = if waiting.outcome == PackageState::Held {
            "is held, not published"
        } else {
            "is set aside, not published"
        };
        banner(
            &mut body,
            "alert",
            &format!(
                "Package {} (corte {}, SHA-256 {}) {what}: {}",
                waiting.name,
                waiting.corte.as_deref().unwrap_or("unknown"),
                waiting.sha256,
                waiting.reason,
            ),
        );
    }
    match &state.live {
        None => banner(&mut body, "info", "No corte is live yet."),
        Some(live) => {
            let stale = if live.stale {
                " <strong class=\"bad\">(older than three update intervals)</strong>"
            } else {
                ""
            };
            let _ = write!(
                body,
                "<h2>Live corte {}</h2><table>\
                 <tr><th>Corte time</th><td>{}</td></tr>\
                 <tr><th>Package</th><td>{} <code>{}</code></td></tr>\
                 <tr><th>Went live</th><td>{}</td></tr>\
                 <tr><th>Lag</th><td>{:.3} s (the calls allow 60 s)</td></tr>\
                 <tr><th>Age</th><td>{} s{stale}</td></tr>\
                 <tr><th>Files</th><td>{}</td></tr></table>",
                html_escape(&live.corte),
                html_escape(&live.corte_time_local),
                html_escape(&live.package_name),
                html_escape(&live.package),
                html_escape(&live.live_at),
                live.lag_seconds,
                live.age_seconds,
                live.files,
            );
        }
    }
    let counts = &state.counts;
    let _ = write!(
        body,
        "<h2>Packages</h2><p>{} received, {} rejected, {} published, {} held, {} set aside. \
         The site holds {} of at most {} bytes in memory. {} open connections; \
         {} access log lines lost.</p>",
        counts.received,
        counts.rejected,
        counts.published,
        counts.held,
        counts.set_aside,
        state.memory.site_bytes,
        state.memory.max_site_bytes,
        state.open_connections,
        state.access_log_lost_lines,
    );
    clock_section(&mut body, state);
    if let Some(acme) = &state.acme {
        let _ = write!(
            body,
            "<h2>HTTPS certificate (ACME)</h2><table><tr><th>Names</th><td>{}</td></tr>\
             <tr><th>Directory</th><td>{} ({})</td></tr>",
            html_escape(&acme.domains.join(", ")),
            html_escape(&acme.directory),
            serde_json::to_value(acme.challenge)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
        if let Some(c) = &acme.certificate {
            let _ = write!(
                body,
                "<tr><th>Serial</th><td><code>{}</code></td></tr>\
                 <tr><th>Valid until</th><td>{} ({} days left)</td></tr>",
                html_escape(&c.serial),
                html_escape(&c.not_after),
                c.seconds_left / 86_400,
            );
        }
        let _ = write!(
            body,
            "<tr><th>Next attempt</th><td>{}</td></tr>\
             <tr><th>Failures in a row</th><td{}>{}</td></tr></table>",
            html_escape(acme.next_attempt_at.as_deref().unwrap_or("-")),
            if acme.consecutive_failures > 0 {
                " class=\"bad\""
            } else {
                ""
            },
            acme.consecutive_failures,
        );
    }
    if !pulled.is_empty() {
        body.push_str(
            "<h2>Pulled URLs</h2><table><tr><th>URL</th><th>Last poll</th><th>Last success</th>\
             <th>Packages</th><th>Failures in a row</th></tr>",
        );
        for url in pulled {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
                html_escape(&url.url),
                html_escape(&url.last_poll),
                html_escape(url.last_success.as_deref().unwrap_or("-")),
                url.packages_handed_over,
                if url.failures > 0 {
                    " class=\"bad\""
                } else {
                    ""
                },
                url.failures,
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Traffic, last hour</h2>");
    body.push_str(&chart(traffic));
    body.push_str(
        "<h2>Cortes</h2><table><tr><th>#</th><th>Corte</th><th>Kind</th><th>Build</th>\
         <th>Package</th><th>Went live</th><th>Lag (s)</th></tr>",
    );
    for p in cortes.iter().rev().take(HISTORY) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            p.seq,
            html_escape(&p.corte_id),
            p.kind.as_str(),
            p.build,
            html_escape(&p.name),
            p.live_at,
            p.lag_ms as f64 / 1000.0,
        );
    }
    body.push_str("</table>");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>difusor status</title><style>\
         body{{font-family:sans-serif;max-width:60rem;margin:auto;padding:1rem}}\
         table{{border-collapse:collapse}}td,th{{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #ddd}}\
         .alert{{background:#b00;color:#fff;padding:.6rem}}.info{{background:#eef;padding:.6rem}}\
         .bad{{color:#b00}}</style></head><body><h1>difusor {}</h1>{body}\
         <p><a href=\"/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p></body></html>\n",
        html_escape(state.version),
    )
}

/// The clock's offset, each server's answer, systemd's view, and syslog's counts.
fn clock_section(body: &mut String, state: &Status) {
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
    let _ = write!(
        body,
        "<h2>Clock</h2><table><tr><th>Offset</th><td{}>{}</td></tr>\
         <tr><th>Synchronised (systemd)</th><td>{synced}</td></tr>",
        if clock.offset_exceeded {
            " class=\"bad\""
        } else {
            ""
        },
        html_escape(&offset),
    );
    for s in &clock.servers {
        let answer = match (s.offset_seconds, &s.error) {
            (Some(offset), _) => format!(
                "{offset:+.3} s, round trip {:.3} s, stratum {}",
                s.delay_seconds.unwrap_or_default(),
                s.stratum.unwrap_or_default()
            ),
            (None, error) => format!("error: {}", error.as_deref().unwrap_or("?")),
        };
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            html_escape(&s.server),
            html_escape(&answer)
        );
    }
    if let Some(syslog) = &state.syslog {
        let _ = write!(
            body,
            "<tr><th>Syslog</th><td>{}: {} sent, {} not sent</td></tr>",
            html_escape(&syslog.target),
            syslog.sent,
            syslog.dropped
        );
    }
    body.push_str("</table>");
}

fn banner(out: &mut String, class: &str, message: &str) {
    let _ = write!(out, "<p class=\"{class}\">{}</p>", html_escape(message));
}

/// Requests per minute as an SVG bar chart, oldest minute on the left.
fn chart(per_minute: &[u64]) -> String {
    const W: usize = 600;
    const H: usize = 120;
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let bar = W / per_minute.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" role=\"img\" \
         aria-label=\"requests per minute in the last hour\">",
        H + 20
    );
    for (i, &n) in per_minute.iter().enumerate() {
        let h = (n as f64 / max as f64 * H as f64).round() as usize;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"#2a6\"><title>{n} requests</title></rect>",
            i * bar,
            H - h,
            bar.saturating_sub(1).max(1),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"12\">60 min ago</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">now · peak {max}/min</text></svg>",
        H + 15,
        W,
        H + 15
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::admin::status::{GateStatus, Memory, PublisherStatus};
    use crate::clock::ClockStatus;
    use crate::journal::{Counts, Waiting};

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
            memory: Memory {
                site_bytes: 0,
                max_site_bytes: 1,
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
            open_connections: 0,
            max_open_connections: 1,
            connections_evicted: 0,
            connections_refused: 0,
            pull: None,
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
