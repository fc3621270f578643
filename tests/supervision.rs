//! What the server does when its publisher thread dies: its health turns red, every channel
//! that hands it a package is told the server failed (never that the package was refused),
//! the death is journaled, and the process exits with status 2 so that its service manager
//! starts it again, which takes the waiting packages.
//!
//! Nothing a sender can do kills the publisher, so these tests need a build with the
//! `fault-injection` feature, where a package of a reserved name panics it:
//! `cargo test --release --features fault-injection --test tests supervision`.

use std::time::Duration;

use crate::support::*;

/// The name that panics the publisher in a `fault-injection` build.
const PANIC_NAME: &str = "fault-injection-panic-publisher.zip";

#[test]
fn a_dead_publisher_turns_the_health_red_and_the_server_exits_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_corte("20240602_2015");
    assert_eq!(curl(&server.admin("/health"), &[]).status, 200);
    assert_eq!(server.status()["healthy"], true);

    let package = dir.path().join(PANIC_NAME);
    std::fs::write(&package, site_package("20240602_2020", &[])).unwrap();
    let upload = curl(
        &server.admin("/ingest"),
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/octet-stream",
            "-H",
            &format!("x-difusor-name: {PANIC_NAME}"),
            "--data-binary",
            &format!("@{}", package.display()),
        ],
    );
    assert_eq!(upload.status, 503, "a server error: {}", upload.text());

    let status = server.wait_status("the publisher seen dead", |s| s["healthy"] == false);
    assert_eq!(status["publisher"]["running"], false, "{status:#}");
    let health = curl(&server.admin("/health"), &[]);
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(
        health.text().contains("fault injection"),
        "{}",
        health.text()
    );
    let metrics = curl(&server.admin("/metrics"), &[]).text();
    assert!(metrics.contains("difusor_publisher_up 0"), "{metrics}");
    // Visitors are still served the live corte while the server winds down.
    let page = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("20240602_2015"));

    // Every channel that finds the publisher gone says the server failed.
    let next = dir.path().join("20240602_2030_PREP.zip");
    std::fs::write(&next, site_package("20240602_2030", &[])).unwrap();
    let out = server.run(&["ingest", next.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a server error, not a rejection (1): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("publisher is not running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop_file(
        &server.entrada(),
        "20240602_2030_PREP.zip",
        &std::fs::read(&next).unwrap(),
    );
    wait_events(&server, "intake-error", 1);

    let exit = server
        .wait_exit(Duration::from_secs(30))
        .expect("the server exits by itself");
    assert_eq!(exit.code(), Some(2), "log: {}", server.log());
    assert!(server.log().contains("the publisher stopped unexpectedly"));
    let died = events(&server, "publisher-died");
    assert_eq!(died.len(), 1, "{died:?}");
    assert!(
        died[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("fault injection")
    );
    assert!(
        events(&server, "rejected").is_empty(),
        "nothing was taken for a refusal"
    );
    assert!(
        server.entrada().join("20240602_2030_PREP.zip").exists(),
        "the package waits in the folder"
    );

    // Started again (as the service manager does), it is healthy and takes what waited.
    server.restart();
    server.wait_corte("20240602_2030");
    assert_eq!(curl(&server.admin("/health"), &[]).status, 200);
}
