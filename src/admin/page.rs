//! The status page for operators: one self-contained HTML page (no request leaves it) that
//! refreshes itself every ten seconds.
//!
//! It shows first what must not be missed: a closed gate, an institute's notice, an open
//! gate with no `publish_start` (results public as soon as they arrive), a pulled URL that
//! fails, or a package held or set aside for an operator; then the live corte and its lag,
//! the counts and the memory the site holds, each pulled URL, the traffic of the last hour as
//! an SVG bar chart, and the history of cortes.

use std::fmt::Write as _;

use serde_json::Value;

use crate::journal::Publication;
use crate::site::html_escape;

/// Cortes listed in the history table.
const HISTORY: usize = 30;

/// The page, from `/status`'s JSON, the journal's publications and requests per minute.
pub(super) fn render(state: &Value, cortes: &[Publication], traffic: &[u64]) -> String {
    let mut body = String::new();
    let gate = &state["gate"];
    if let Some(notice) = gate["notice"].as_str() {
        banner(
            &mut body,
            "alert",
            &format!("The institute's notice replaces the results: {notice}"),
        );
    } else if gate["open"] == false {
        let start = gate["publish_start"].as_str().unwrap_or("?");
        banner(
            &mut body,
            "info",
            &format!("Embargo: results are not public before {start}."),
        );
    }
    if let Some(warning) = gate["warning"].as_str() {
        banner(&mut body, "alert", &format!("Warning: {warning}."));
    }
    let pulled = state["pull"].as_array().map_or(&[][..], Vec::as_slice);
    for url in pulled.iter().filter(|u| u["failures"].as_u64() > Some(0)) {
        banner(
            &mut body,
            "alert",
            &format!(
                "Pulling {} fails since {} ({} attempts): {}",
                url["url"].as_str().unwrap_or("?"),
                url["failing_since"].as_str().unwrap_or("?"),
                url["failures"],
                url["last_error"].as_str().unwrap_or("?"),
            ),
        );
    }
    for waiting in state["waiting"].as_array().map_or(&[][..], Vec::as_slice) {
        let what = if waiting["outcome"] == "held" {
            "is held, not published"
        } else {
            "is set aside, not published"
        };
        banner(
            &mut body,
            "alert",
            &format!(
                "Package {} (corte {}, SHA-256 {}) {what}: {}",
                waiting["name"].as_str().unwrap_or("?"),
                waiting["corte"].as_str().unwrap_or("unknown"),
                waiting["sha256"].as_str().unwrap_or("?"),
                waiting["reason"].as_str().unwrap_or("?"),
            ),
        );
    }
    let live = &state["live"];
    if live.is_null() {
        banner(&mut body, "info", "No corte is live yet.");
    } else {
        let stale = if live["stale"] == true {
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
            text(&live["corte"]),
            text(&live["corte_time_local"]),
            text(&live["package_name"]),
            text(&live["package"]),
            text(&live["live_at"]),
            live["lag_seconds"].as_f64().unwrap_or(0.0),
            live["age_seconds"],
            live["files"],
        );
    }
    let counts = &state["counts"];
    let _ = write!(
        body,
        "<h2>Packages</h2><p>{} received, {} rejected, {} published, {} held, {} set aside. \
         The site holds {} of at most {} bytes in memory. {} open connections; \
         {} access log lines lost.</p>",
        counts["received"],
        counts["rejected"],
        counts["published"],
        counts["held"],
        counts["set_aside"],
        state["memory"]["site_bytes"],
        state["memory"]["max_site_bytes"],
        state["open_connections"],
        state["access_log_lost_lines"],
    );
    if !pulled.is_empty() {
        body.push_str(
            "<h2>Pulled URLs</h2><table><tr><th>URL</th><th>Last poll</th><th>Last success</th>\
             <th>Packages</th><th>Failures in a row</th></tr>",
        );
        for url in pulled {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
                text(&url["url"]),
                text(&url["last_poll"]),
                text(&url["last_success"]),
                url["packages_handed_over"],
                if url["failures"].as_u64() > Some(0) {
                    " class=\"bad\""
                } else {
                    ""
                },
                url["failures"],
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
            html_escape(&p.kind),
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
        text(&state["version"]),
    )
}

fn banner(out: &mut String, class: &str, message: &str) {
    let _ = write!(out, "<p class=\"{class}\">{}</p>", html_escape(message));
}

fn text(v: &Value) -> String {
    html_escape(v.as_str().unwrap_or("-"))
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

    #[test]
    fn the_page_warns_of_an_open_gate_without_a_start_and_draws_the_traffic() {
        let state = serde_json::json!({
            "live": null,
            "counts": {"received": 0, "rejected": 0, "published": 0},
            "gate": {"open": true, "notice": null,
                     "warning": "no publish_start is set: results are public as soon as they arrive"},
            "open_connections": 0, "access_log_lost_lines": 0, "version": "0.1.0",
        });
        let mut traffic = vec![0; 60];
        traffic[59] = 10;
        traffic[58] = 5;
        let html = render(&state, &[], &traffic);
        assert!(html.contains("class=\"alert\">Warning: no publish_start is set"));
        assert!(html.contains("<svg"));
        let held = serde_json::json!({
            "live": null, "counts": {}, "gate": {"open": true},
            "waiting": [{"sha256": "ab12", "name": "20280606_2035_PREP.zip", "outcome": "held",
                         "corte": "20280606_2035", "reason": "ahead of the clock"}],
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
