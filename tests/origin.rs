//! difusor as the origin of a load balancer and caches, through real sockets and curl: the
//! headers every public response carries for caches, the load balancer's health check,
//! draining on SIGTERM, and the purge of caches after each corte and notice change.

use std::time::{Duration, Instant};

use crate::support::webservers::{Varnish, varnish_installed};
use crate::support::*;

/// What every public response carries for caches: `Date`, and never `Age`.
fn assert_dated(r: &Response, what: &str) {
    assert!(
        r.header("date").is_some(),
        "{what}: no Date: {:?}",
        r.headers
    );
    assert!(
        r.header("age").is_none(),
        "{what}: Age sent: {:?}",
        r.headers
    );
}

/// A response that no cache may keep: `Cache-Control: no-store`, dated.
fn assert_not_stored(r: &Response, what: &str) {
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "{what} (status {}): {:?}",
        r.status,
        r.headers
    );
    assert_dated(r, what);
}

#[test]
fn files_revalidate_by_etag_and_errors_are_never_stored() {
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain([0u8; 600])
        .collect();
    let css: Vec<u8> = (0..400u32)
        .flat_map(|i| format!(".c{i} {{ color: red }}\n").into_bytes())
        .collect();
    let (_dir, server) = serving(
        &["--stale-if-error", "1h"],
        &[
            ("img/logo.png", &png),
            ("css/prep.css", &css),
            ("carpeta/index.html", b"<p>carpeta</p>"),
        ],
    );

    // main.json: never stored, so never `stale-if-error` either (R4.7).
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(main.status, 200);
    assert_eq!(
        main.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_dated(&main, "main.json");

    // A file with no compressed variant still varies by Accept-Encoding, so that caches key
    // every file alike.
    let logo = curl(&server.url("/img/logo.png"), &[]);
    assert_eq!(logo.status, 200);
    assert_eq!(logo.body, png);
    let etag = logo.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    assert_eq!(logo.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        logo.header("cache-control"),
        Some("public, max-age=60, stale-if-error=3600")
    );
    assert_dated(&logo, "a file");

    let again = curl(
        &server.url("/img/logo.png"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("vary"), Some("Accept-Encoding"));
    assert_eq!(again.header("cache-control"), logo.header("cache-control"));
    assert_dated(&again, "a 304");

    let head = curl(&server.url("/img/logo.png"), &["-I"]);
    assert_eq!(head.status, 200);
    // With -I, curl's output is the response head; anything after it would be a body.
    assert!(head.text().ends_with("\r\n\r\n"), "{}", head.text());
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("vary"), Some("Accept-Encoding"));
    assert_eq!(head.header("cache-control"), logo.header("cache-control"));
    assert_dated(&head, "HEAD");

    // A compressed variant, once made, has its own strong ETag and revalidates with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let br = loop {
        let r = curl(&server.url("/css/prep.css"), &["-H", "Accept-Encoding: br"]);
        if r.header("content-encoding") == Some("br") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no brotli variant: {:?}",
            r.headers
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let br_etag = br.header("etag").unwrap().to_owned();
    assert!(br_etag.ends_with("-br\""), "{br_etag}");
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    let again = curl(
        &server.url("/css/prep.css"),
        &[
            "-H",
            "Accept-Encoding: br",
            "-H",
            &format!("If-None-Match: {br_etag}"),
        ],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Over HTTP/2 too.
    let h2 = curl(&server.url("/img/logo.png"), &["--http2-prior-knowledge"]);
    assert_eq!(h2.status, 200);
    assert_eq!(h2.header("vary"), Some("Accept-Encoding"));
    assert_dated(&h2, "HTTP/2");

    // Errors and redirects: never stored.
    for (what, path, args, status) in [
        ("404", "/no-existe.html", vec![], 404),
        ("405", "/", vec!["-X", "DELETE"], 405),
        ("400", "/%2e%2e/etc/passwd", vec!["--path-as-is"], 400),
        ("413", "/", vec!["-X", "GET", "--data", "x"], 413),
        (
            "416",
            "/img/logo.png",
            vec!["-H", "Range: bytes=99999-"],
            416,
        ),
        ("301", "/carpeta", vec![], 301),
        ("404 to HEAD", "/no-existe.html", vec!["-I"], 404),
    ] {
        let r = curl(&server.url(path), &args);
        assert_eq!(r.status, status, "{what}");
        assert_not_stored(&r, what);
    }
}

#[test]
fn gate_pages_and_the_wait_for_a_first_corte_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = embargoed_server(dir.path());
    let r = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert_not_stored(&r, "the embargo page");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let r = curl(&server.url("/"), &[]);
    assert_eq!(r.status, 503, "no corte yet");
    assert_not_stored(&r, "the page before the first corte");

    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    assert_success(&server.run(&["notice", "on", "--text", "Aviso del Instituto"]));
    let r = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Aviso del Instituto"));
    assert_not_stored(&r, "the notice");
}

#[test]
fn health_says_whether_to_send_visitors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--health-listen", "127.0.0.1:0"]);
    let health = health_url(&server);

    let r = curl(&health, &[]);
    assert_eq!(r.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["serving"], false);
    assert_eq!(body["reason"], "no corte has been published yet");
    assert_not_stored(&r, "the health before the first corte");

    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    let r = curl(&health, &[]);
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"serving": true, "corte": "20240602_2000"})
    );
    assert_not_stored(&r, "the health");

    let r = curl(&health, &["-I"]);
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("\r\n\r\n"), "{}", r.text());

    // Nothing else is answered; a body sent is never read.
    let r = curl(&health, &["-X", "POST", "--data", "x"]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let other = health.replace("/health", "/json/main.json");
    assert_eq!(curl(&other, &[]).status, 404);
    assert_eq!(curl(&format!("{health}/x"), &[]).status, 404);
}

#[test]
fn sigterm_drains_before_the_stop() {
    let (_dir, mut server) = serving(
        &["--health-listen", "127.0.0.1:0", "--drain-time", "3s"],
        &[],
    );
    let health = health_url(&server);
    assert_eq!(curl(&health, &[]).status, 200);

    server.signal("TERM");
    let signalled = Instant::now();
    let mut draining_seen = None;
    let mut last_public_200 = None;
    let status = loop {
        if let Some(status) = server.wait_exit(Duration::from_millis(100)) {
            break status;
        }
        let at = signalled.elapsed();
        assert!(at < Duration::from_secs(20), "still running after {at:?}");
        let h = curl(&health, &["--max-time", "2"]);
        if h.status == 200 {
            assert!(
                at < Duration::from_millis(500),
                "health 200 {at:?} after SIGTERM"
            );
        } else if h.status == 503 && h.text().contains("\"draining\"") {
            draining_seen.get_or_insert(at);
        }
        if curl(&server.url("/"), &["--max-time", "2"]).status == 200 {
            last_public_200 = Some(at);
        }
    };
    let exited = signalled.elapsed();
    assert!(status.success(), "exit {status}");
    let draining_seen = draining_seen.expect("the health answered 503 draining");
    assert!(draining_seen < Duration::from_secs(1), "{draining_seen:?}");
    let last_public_200 = last_public_200.expect("the public site answered while draining");
    assert!(
        last_public_200 >= Duration::from_millis(2500),
        "the public site stopped answering {last_public_200:?} after SIGTERM"
    );
    assert!(
        exited >= Duration::from_secs(3),
        "exited {exited:?} after SIGTERM"
    );

    let draining = events(&server, "draining");
    assert_eq!(draining.len(), 1);
    assert_eq!(draining[0]["detail"]["drain_time_ms"], 3000);
}

#[test]
fn caches_are_purged_after_each_corte_and_notice_change() {
    let working = Recorder::start(200);
    let refusing = Recorder::start(503);
    let silent = Recorder::start(0);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("d"),
        &[
            "--purge-url",
            &working.url(),
            "--purge-url",
            &refusing.url(),
            "--purge-url",
            &silent.url(),
            "--purge-host",
            "prep.example.mx",
        ],
    );
    let purge_warnings = || warnings_of(&server, "purge");

    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    let heads = working.wait_heads(1);
    assert!(heads[0].starts_with("BAN / HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("\r\nx-ban-url: .\r\n"),
        "{}",
        heads[0]
    );
    refusing.wait_heads(1);
    silent.wait_heads(1);

    // The silent cache is still holding its first purge: the others go on.
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_corte("20240602_2015");
    working.wait_heads(2);
    refusing.wait_heads(2);
    assert_success(&server.run(&["notice", "on", "--text", "Aviso del Instituto"]));
    working.wait_heads(3);
    refusing.wait_heads(3);
    assert_success(&server.run(&["notice", "off"]));
    working.wait_heads(4);
    refusing.wait_heads(4);

    // One warning per failing cache, however many purges it failed; the silent one's once
    // its request timed out.
    let deadline = Instant::now() + Duration::from_secs(30);
    while purge_warnings().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", purge_warnings());
        std::thread::sleep(Duration::from_millis(100));
    }
    let warnings = purge_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let about = |r: &Recorder| {
        warnings
            .iter()
            .find(|w| w["detail"]["url"] == r.url())
            .unwrap_or_else(|| panic!("no warning about {}: {warnings:?}", r.url()))["detail"]
            ["warning"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(about(&refusing).contains("503"), "{}", about(&refusing));
    assert!(
        about(&silent).contains("no answer in time"),
        "{}",
        about(&silent)
    );
    assert!(working.heads().iter().all(|h| h.starts_with("BAN / ")));

    // A cache that works again is journaled once.
    refusing.set_status(200);
    assert_success(&server.run(&["notice", "on", "--text", "Aviso"]));
    refusing.wait_heads(5);
    let recovered = wait_events(&server, "purge-recovered", 1);
    assert_eq!(recovered[0]["detail"]["url"], refusing.url());
    assert!(recovered[0]["detail"]["failures"].as_u64().unwrap() >= 4);
    assert_eq!(purge_warnings().len(), 2);
}

#[test]
fn a_cache_that_failed_the_purge_is_purged_again_once_it_answers_without_a_new_corte() {
    let cache = Recorder::start(503);
    let (_dir, server) = serving(
        &[
            "--purge-url",
            &cache.url(),
            "--purge-host",
            "prep.example.mx",
        ],
        &[],
    );
    cache.wait_heads(1);
    let failing = wait_events(&server, "warning", 1);
    assert_eq!(failing[0]["detail"]["check"], "purge", "{failing:?}");

    // Back (restarted): the purge reaches it with no new corte and no notice change.
    cache.set_status(200);
    let back = Instant::now();
    let recovered = wait_events(&server, "purge-recovered", 1);
    let took = back.elapsed();
    eprintln!("purged {took:?} after the cache came back");
    assert_eq!(recovered[0]["detail"]["url"], cache.url());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(cache.heads().iter().all(|h| h.starts_with("BAN / ")));
    // Journaled once when it started failing, however many times it was tried.
    let warnings = warnings_of(&server, "purge");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // Then no more retries: it took one.
    let asked = cache.heads().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        cache.heads().len(),
        asked,
        "purged again with nothing changed"
    );
}

/// The VCL of README.md's "Purge." paragraph, exactly as documented, with its ACL naming
/// loopback, after a backend at `127.0.0.1:<port>`.
fn readme_purge_vcl(port: u16) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let purge = &readme[readme.find("\nPurge. ").expect("README's Purge paragraph")..];
    let start = purge
        .find("```vcl\n")
        .expect("a VCL example in README's Purge paragraph")
        + 7;
    let vcl = &purge[start..start + purge[start..].find("```").unwrap()];
    let nodes = r#"acl difusores { "10.0.0.11"; "10.0.0.12"; }"#;
    assert!(
        vcl.contains(nodes),
        "README's VCL no longer holds {nodes:?}: {vcl}"
    );
    format!(
        "vcl 4.1;\nbackend difusor {{ .host = \"127.0.0.1\"; .port = \"{port}\"; }}\n{}",
        vcl.replace(nodes, r#"acl difusores { "127.0.0.1"; }"#)
    )
}

#[test]
fn a_purge_drops_only_this_sites_files_from_a_cache_that_holds_other_sites() {
    if !varnish_installed() {
        return;
    }
    let origin = ReservedPort::hold();
    let varnish = Varnish::with_vcl(&readme_purge_vcl(origin.port));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        &dir.path().join("d"),
        origin.port,
        &[
            "--purge-url",
            &varnish.url(),
            "--purge-host",
            "prep.example.mx",
        ],
    );
    let bans = || {
        varnish
            .admin(&["ban.list"])
            .lines()
            .filter(|l| l.contains(" ~ "))
            .count()
    };
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package(
            "20240602_2000",
            &[("css/estilo.css", b"body { color: #333; }")],
        ),
    );
    server.wait_corte("20240602_2000");
    let deadline = Instant::now() + Duration::from_secs(30);
    while bans() < 1 {
        assert!(
            Instant::now() < deadline,
            "{}",
            varnish.admin(&["ban.list"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Varnish found the origin refusing connections before it started: it tries again
    // after a while.
    while curl(&format!("{}json/main.json", varnish.url()), &[]).status != 200 {
        assert!(Instant::now() < deadline, "Varnish never reached difusor");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The same cache holds this site's file and another site's (here from the same
    // backend): both stored (`public, max-age=60`), the second request of each a hit.
    let css = format!("{}css/estilo.css", varnish.url());
    let get = |host: &str| curl(&css, &["-H", &format!("Host: {host}")]);
    let hit = |r: &Response| r.header("x-varnish").map(|v| v.split_whitespace().count()) == Some(2);
    for host in ["prep.example.mx", "www.periodico.example.mx"] {
        let first = get(host);
        assert_eq!(
            first.status,
            200,
            "{host}: {:?} {}",
            first.headers,
            first.text()
        );
        let again = get(host);
        assert!(hit(&again), "{host} not stored: {:?}", again.headers);
    }

    // A new corte: this site's file is fetched again, the other site's stays stored.
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package(
            "20240602_2015",
            &[("css/estilo.css", b"body { color: #000; }")],
        ),
    );
    server.wait_corte("20240602_2015");
    loop {
        let ours = get("PREP.example.mx:80");
        if ours.text() == "body { color: #000; }" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "this site's file still stored after the purge: {:?}; {}",
            ours.headers,
            varnish.admin(&["ban.list"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = get("www.periodico.example.mx");
    assert!(
        hit(&other),
        "the other site's file was dropped by the purge: {:?}",
        other.headers
    );
    assert_eq!(other.text(), "body { color: #333; }");
}

#[test]
fn purge_method_can_be_purge() {
    let cache = Recorder::start(200);
    let (_dir, _server) = serving(
        &[
            "--purge-url",
            &cache.url(),
            "--purge-method",
            "PURGE",
            "--purge-host",
            "prep.example.mx",
        ],
        &[],
    );
    let heads = cache.wait_heads(1);
    assert!(heads[0].starts_with("PURGE / HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("\r\nx-ban-url: .\r\n")
    );
}
