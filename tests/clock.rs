//! The clock check: difusor asks the NTP servers of `ntp_servers` (here a real SNTP server in
//! the test, its clock skewed as the test says) and shows the offset on `/status`, `/metrics`
//! and the status page; past `clock_max_offset` it warns in the journal once per crossing and
//! journals the return; a server that does not answer is an error shown, never a crash. A
//! jump of the clock itself (libfaketime moving one process's clock) is said at once.

use std::time::Duration;

use crate::support::collectors::SntpResponder;
use crate::support::*;

/// `/metrics` as text.
fn metrics(server: &Server) -> String {
    let r = curl(&server.admin("/metrics"), &[]);
    assert_eq!(r.status, 200);
    r.text()
}

/// The value of the metric line starting with `name `.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// The journal's `warning` events about the clock.
fn clock_warnings(server: &Server) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|e| e["detail"]["check"] == "clock")
        .collect()
}

/// Waits for the one `clock-recovered` entry, and checks it tells an offset near zero.
fn wait_recovered(server: &Server) {
    let recovered = wait_events(server, "clock-recovered", 1);
    assert!(
        recovered[0]["detail"]["offset_seconds"]
            .as_f64()
            .unwrap()
            .abs()
            < 0.5,
        "{recovered:#?}"
    );
}

#[test]
fn a_clock_five_seconds_off_is_shown_and_warned_of_once_per_crossing() {
    let ntp = SntpResponder::start(5_000);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--ntp-servers", &ntp.server(), "--ntp-interval", "1s"],
    );
    let status = server.wait_status("the clock's offset", |s| {
        s["clock"]["offset_seconds"].as_f64().is_some()
    });
    let clock = &status["clock"];
    let offset = clock["offset_seconds"].as_f64().unwrap();
    assert!((4.5..5.5).contains(&offset), "{clock:#}");
    assert_eq!(clock["checked"], true);
    assert_eq!(clock["offset_exceeded"], true, "{clock:#}");
    assert_eq!(clock["server"], ntp.server());
    assert_eq!(clock["max_offset_seconds"], 1.0);
    assert_eq!(clock["servers"][0]["stratum"], 1);
    assert!(
        clock["warning"].as_str().unwrap().contains("behind"),
        "{clock:#}"
    );

    let text = metrics(&server);
    let gauge = metric(&text, "difusor_clock_offset_seconds");
    assert!((4.5..5.5).contains(&gauge), "{text}");
    assert_eq!(metric(&text, "difusor_clock_offset_exceeded"), 1.0);
    assert!(metric(&text, "difusor_clock_checked_timestamp_seconds") > 1.7e9);

    let page = curl(&server.admin("/"), &[]).text();
    assert!(
        page.contains("<p class=\"alert\">Clock: this machine's clock is"),
        "the page shows the offset first, as an alert: {page}"
    );
    assert!(page.contains("<h2>Clock</h2>"), "{page}");

    // Checked every second: several checks past the threshold make one warning.
    let asked = ntp.answered();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ntp.answered() < asked + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock is checked again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let warnings = wait_events(&server, "warning", 1);
    let clock_warnings_now = clock_warnings(&server);
    assert_eq!(clock_warnings_now.len(), 1, "{warnings:#?}");
    let detail = &clock_warnings_now[0]["detail"];
    assert!(
        (4.5..5.5).contains(&detail["offset_seconds"].as_f64().unwrap()),
        "{detail}"
    );
    assert_eq!(detail["server"], ntp.server());

    // The clock agrees again: journaled once, the warning gone.
    ntp.set_skew_ms(0);
    wait_recovered(&server);
    let status = server.wait_status("the offset within the threshold", |s| {
        s["clock"]["offset_exceeded"] == false
    });
    assert!(status["clock"]["warning"].is_null(), "{status:#}");
    assert_eq!(
        metric(&metrics(&server), "difusor_clock_offset_exceeded"),
        0.0
    );

    // Off again: a second crossing, a second warning.
    ntp.set_skew_ms(-5_000);
    server.wait_status("the clock off again", |s| {
        s["clock"]["offset_seconds"]
            .as_f64()
            .is_some_and(|o| o < -4.5)
    });
    let again = wait_events(&server, "warning", 2);
    let clock_warnings_now = clock_warnings(&server);
    assert_eq!(clock_warnings_now.len(), 2, "{again:#?}");
    let said = |words: &str| {
        clock_warnings_now
            .iter()
            .filter(|w| w["detail"]["warning"].as_str().unwrap().contains(words))
            .count()
    };
    assert_eq!(
        (said("behind"), said("ahead of")),
        (1, 1),
        "{clock_warnings_now:#?}"
    );
    assert_eq!(events(&server, "clock-recovered").len(), 1);
}

#[test]
fn an_accurate_clock_is_not_warned_of_and_a_silent_server_is_an_error() {
    let accurate = SntpResponder::start(0);
    // Bound, never answering: the question times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_server = silent.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &tmp.path().join("data"),
        &[
            "--ntp-servers",
            &accurate.server(),
            "--ntp-servers",
            &silent_server,
            "--ntp-interval",
            "1s",
        ],
    );
    let status = server.wait_status("both servers asked", |s| {
        s["clock"]["servers"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let clock = &status["clock"];
    assert!(
        clock["offset_seconds"].as_f64().unwrap().abs() < 0.5,
        "{clock:#}"
    );
    assert_eq!(clock["server"], accurate.server());
    assert_eq!(clock["offset_exceeded"], false);
    assert!(clock["warning"].is_null(), "{clock:#}");
    let servers = clock["servers"].as_array().unwrap();
    let failed = servers
        .iter()
        .find(|s| s["server"] == silent_server)
        .unwrap();
    assert!(failed["offset_seconds"].is_null(), "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no answer"),
        "{failed}"
    );
    // Several checks later: still no warning, and the server serves.
    let asked = accurate.answered();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while accurate.answered() < asked + 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(clock_warnings(&server).is_empty());
    assert!(server.alive());

    // Only a server that refuses (nothing listens on its port): an error, no crash.
    let refused = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().to_string()
    };
    let mut lonely = Server::start(
        &tmp.path().join("data2"),
        &["--ntp-servers", &refused, "--ntp-interval", "1s"],
    );
    let status = lonely.wait_status("the refusal", |s| {
        s["clock"]["servers"][0]["error"].is_string()
    });
    let clock = &status["clock"];
    assert!(clock["offset_seconds"].is_null(), "{clock:#}");
    assert!(
        clock["warning"]
            .as_str()
            .unwrap()
            .starts_with("no NTP server answered"),
        "{clock:#}"
    );
    assert!(metric(&metrics(&lonely), "difusor_clock_offset_seconds").is_nan());
    assert!(lonely.alive());
    drop_file(
        &lonely.entrada(),
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    lonely.wait_corte("20240602_2000");
}

#[test]
fn an_answer_with_a_round_trip_below_zero_is_an_error_not_the_offset() {
    // Its times say it held the question 1000 s, though it answered at once: a round trip of
    // about -1000 s, and an offset of about 500 s, which would win as the shortest trip.
    let lying = SntpResponder::claiming_hold(0, 1_000_000);
    let honest = SntpResponder::start(0);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &[
            "--ntp-servers",
            &lying.server(),
            "--ntp-servers",
            &honest.server(),
            "--ntp-interval",
            "1s",
        ],
    );
    let status = server.wait_status("both servers answered", |s| {
        s["clock"]["servers"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let clock = &status["clock"];
    assert_eq!(clock["server"], honest.server(), "{clock:#}");
    assert!(
        clock["offset_seconds"].as_f64().unwrap().abs() < 0.5,
        "{clock:#}"
    );
    assert_eq!(clock["offset_exceeded"], false, "{clock:#}");
    let lied = clock["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == lying.server())
        .unwrap();
    assert!(lied["offset_seconds"].is_null(), "{lied}");
    assert!(
        lied["error"].as_str().unwrap().contains("inconsistent"),
        "{lied}"
    );
    // Checked again: never a warning about the clock.
    let asked = lying.answered();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lying.answered() < asked + 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        clock_warnings(&server).is_empty(),
        "{:#?}",
        clock_warnings(&server)
    );
}

#[test]
fn a_server_gone_silent_is_journaled_once_and_its_return_as_recovered() {
    let ntp = SntpResponder::start(0);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--ntp-servers", &ntp.server(), "--ntp-interval", "1s"],
    );
    server.wait_status("the clock's offset", |s| {
        s["clock"]["offset_seconds"].as_f64().is_some()
    });

    ntp.set_silent(true);
    let status = server.wait_status("no server answering", |s| {
        s["clock"]["warning"]
            .as_str()
            .is_some_and(|w| w.starts_with("no NTP server answered"))
    });
    // Two more checks without an answer: still one warning.
    let mut last = status["clock"]["last_check"].clone();
    for _ in 0..2 {
        let status = server.wait_status("another check", |s| s["clock"]["last_check"] != last);
        last = status["clock"]["last_check"].clone();
    }
    let warnings = clock_warnings(&server);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert!(
        detail["warning"]
            .as_str()
            .unwrap()
            .starts_with("no NTP server answered, the clock is not checked: "),
        "{detail}"
    );
    let errors = detail["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{detail}");
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}: no answer", ntp.server())),
        "{detail}"
    );
    assert!(events(&server, "clock-recovered").is_empty());

    // It answers again: journaled once as recovered, the warning gone.
    ntp.set_silent(false);
    wait_recovered(&server);
    server.wait_status("the warning gone", |s| s["clock"]["warning"].is_null());
    let asked = ntp.answered();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ntp.answered() < asked + 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(events(&server, "clock-recovered").len(), 1);
    assert_eq!(clock_warnings(&server).len(), 1);
}

/// The clock jump warnings journaled, with how far it jumped.
fn jumps(server: &Server) -> Vec<f64> {
    events(server, "warning")
        .iter()
        .filter_map(|w| w["detail"]["jump_seconds"].as_f64())
        .collect()
}

/// Waits (at most 30 s) until `n` clock jumps are journaled, and returns them; `what` names
/// the last one in the failure message.
fn wait_jumps(server: &Server, n: usize, what: &str) -> Vec<f64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jumps = jumps(server);
        if jumps.len() >= n {
            return jumps;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} is not journaled; log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_clock_set_forward_or_back_while_serving_is_said_at_once() {
    let Some(lib) = libfaketime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "+0").unwrap();
    let start = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    let mut server = Server::launch_with_env(
        &dir.path().join("d"),
        &["--publish-start", &start, "--publish-end", ""],
        &[
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    server.wait_ready();
    drop_file(
        &server.entrada(),
        "20240602_2100_PREP_SITIO.zip",
        &site_package("20240602_2100", &[]),
    );
    server.wait_corte("20240602_2100");
    assert_eq!(curl(&server.url("/"), &[]).status, 503, "before the start");

    // Two hours forward: past publish_start, which is read from this clock.
    std::fs::write(&offset, "+2h").unwrap();
    let forward = wait_jumps(&server, 1, "a jump of two hours");
    assert_eq!(forward.len(), 1, "{forward:?}");
    assert!((forward[0] - 7200.0).abs() < 60.0, "{forward:?}");
    assert!(server.log().contains("CLOCK JUMPED"), "{}", server.log());

    // And back.
    std::fs::write(&offset, "+0").unwrap();
    let both = wait_jumps(&server, 2, "a jump back");
    assert!(both.iter().any(|j| (j + 7200.0).abs() < 60.0), "{both:?}");
    assert_eq!(
        curl(&server.url("/"), &[]).status,
        503,
        "before the start again"
    );
}
