//! Serving from memory with a real client: cache policy, validators, ranges, methods and the
//! headers every response carries.

use crate::support::*;

fn started() -> (tempfile::TempDir, Server, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let css: Vec<u8> = (0..5000u32)
        .flat_map(|i| format!("/* {i} */\n").into_bytes())
        .collect();
    let pkg = site_package("20240602_2000", &[("css/prep.css", &css)]);
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &pkg);
    server.wait_corte("20240602_2000");
    (dir, server, css)
}

#[test]
fn cache_control_follows_the_policy() {
    let (_dir, server, _) = started();
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(
        main.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(
        curl(&server.url("/"), &[]).header("cache-control"),
        Some("no-cache")
    );
    assert_eq!(
        curl(&server.url("/css/prep.css"), &[]).header("cache-control"),
        Some("public, max-age=60")
    );
    assert_eq!(main.header("x-content-type-options"), Some("nosniff"));
    assert!(main.header("referrer-policy").is_some());
    assert!(main.header("last-modified").is_some());
}

#[test]
fn validators_answer_304() {
    let (_dir, server, _) = started();
    let first = curl(&server.url("/css/prep.css"), &[]);
    let etag = first.header("etag").unwrap().to_owned();
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("x-prep-corte"), Some("20240602_2000"));
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", &format!("If-Modified-Since: {last_modified}")],
    );
    assert_eq!(r.status, 304);
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", "If-None-Match: \"otro\""],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);
}

#[test]
fn preconditions_naming_another_copy_answer_412() {
    let (_dir, server, css) = started();
    let url = server.url("/css/prep.css");
    let first = curl(&url, &[]);
    let etag = first.header("etag").unwrap().to_owned();
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let ok = |headers: &[&str]| {
        let args: Vec<&str> = headers.iter().flat_map(|h| ["-H", *h]).collect();
        curl(&url, &args)
    };
    // A download resumed under the copy it began with: the rest of that copy.
    let r = ok(&["Range: bytes=100-", &format!("If-Match: {etag}")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, css[100..]);
    assert_eq!(ok(&["If-Match: *"]).status, 200);
    assert_eq!(
        ok(&[&format!("If-Unmodified-Since: {last_modified}")]).status,
        200
    );
    // Under another copy: never its bytes spliced with this one's.
    for stale in [
        "If-Match: \"otro\"".to_owned(),
        format!("If-Match: W/{etag}"),
        "If-Unmodified-Since: Sun, 02 Jun 2024 19:00:00 GMT".to_owned(),
    ] {
        let r = ok(&["Range: bytes=100-", &stale]);
        assert_eq!(r.status, 412, "{stale}");
        assert!(
            r.body.starts_with(b"<!DOCTYPE"),
            "{stale}: the page, no byte of the file"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{stale}");
        assert_eq!(curl(&url, &["-I", "-H", &stale]).status, 412, "{stale}");
    }
    // If-Match is asked before If-Unmodified-Since and If-None-Match.
    let r = ok(&[
        &format!("If-Match: {etag}"),
        "If-Unmodified-Since: Sun, 02 Jun 2024 19:00:00 GMT",
    ]);
    assert_eq!(r.status, 200);
    let r = ok(&["If-Match: \"otro\"", &format!("If-None-Match: {etag}")]);
    assert_eq!(r.status, 412);
    // A list sent on several lines is one list (RFC 9110 §5.3): a tag on any line counts.
    let r = ok(&["If-Match: \"otro\"", &format!("If-Match: {etag}")]);
    assert_eq!(r.status, 200, "If-Match on two lines");
    let r = ok(&["If-None-Match: \"otro\"", &format!("If-None-Match: {etag}")]);
    assert_eq!(r.status, 304, "If-None-Match on two lines");
}

#[test]
fn ranges_from_memory_and_from_the_archive() {
    let (_dir, server, css) = started();
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", "Range: bytes=100-199"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, css[100..200]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{}", css.len()).as_str())
    );
    let r = curl(&server.url("/css/prep.css"), &["-H", "Range: bytes=-10"]);
    assert_eq!(r.body, css[css.len() - 10..]);
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", "Range: bytes=999999-"],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", css.len()).as_str())
    );
    let r = curl(
        &server.url("/css/prep.css"),
        &["-H", "Range: bytes=0-9", "-H", "If-Range: \"viejo\""],
    );
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    assert_eq!(r.body, css);

    // A data package is served from the archive: ranges read the file on disk.
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    // (Named for a corte after the live one, so that it is published.)
    drop_file(&server.entrada(), "20240602_2015_PREP_CAMP.zip", &real);
    server.wait_corte("20240602_2015");
    let url = server.url("/datos/20240602_2015_PREP_CAMP.zip");
    let r = curl(&url, &["-H", "Range: bytes=1000-60999"]);
    assert_eq!(r.status, 206);
    assert!(r.body == real[1000..61000]);
    let etag = curl(&url, &["-I"]).header("etag").unwrap().to_owned();
    let r = curl(
        &url,
        &[
            "-H",
            "Range: bytes=60000-",
            "-H",
            &format!("If-Range: {etag}"),
        ],
    );
    assert!(r.body == real[60000..]);
}

#[test]
fn methods_and_bodies() {
    let (_dir, server, css) = started();
    let head = curl(&server.url("/css/prep.css"), &["-I"]);
    assert_eq!(head.status, 200);
    // curl -I prints the headers where the body would go: no byte of the file is there.
    assert!(!head.text().contains("/* 0 */"));
    assert_eq!(
        head.header("content-length"),
        Some(css.len().to_string().as_str())
    );
    let options = curl(&server.url("/"), &["-X", "OPTIONS"]);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = curl(&server.url("/json/main.json"), &["-X", method]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    }
    let with_body = curl(
        &server.url("/json/main.json"),
        &["-X", "GET", "--data-binary", "x"],
    );
    assert_eq!(with_body.status, 413);
    assert!(!with_body.text().contains("20240602_2000"));
    // A length of zero, however many digits it is written with, is no body.
    for length in ["0", "00"] {
        let r = curl(
            &server.url("/json/main.json"),
            &["-H", &format!("Content-Length: {length}")],
        );
        assert_eq!(r.status, 200, "Content-Length: {length}");
    }
    let folder = curl(&server.url("/css"), &[]);
    assert_eq!(
        folder.status, 404,
        "a folder without index.html is not listed"
    );
}

#[test]
fn every_request_is_in_the_access_log_and_goaccess_reads_it() {
    let (dir, mut server, _) = started();
    let ua = "Navegador \"raro\" 1.0";
    for path in [
        "/",
        "/json/main.json",
        "/css/prep.css",
        "/no-existe",
        "/json/main.json",
    ] {
        curl(&server.url(path), &["-A", ua, "-e", "https://ejemplo.mx/"]);
    }
    curl(&server.url("/css/prep.css"), &["-I"]);
    server.stop(); // SIGTERM: the writer flushes what is queued
    let log = std::fs::read_to_string(server.data.join("bitacoras/access.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(lines[1].starts_with("127.0.0.1 - - ["), "{}", lines[1]);
    assert!(
        lines[1].contains("\"GET /json/main.json HTTP/1.1\" 200 "),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with("\"https://ejemplo.mx/\" \"Navegador \\x22raro\\x22 1.0\""),
        "{}",
        lines[1]
    );
    assert!(lines[3].contains("\" 404 "), "{}", lines[3]);
    assert!(
        lines[5].contains("\"HEAD /css/prep.css HTTP/1.1\" 200 0 "),
        "{}",
        lines[5]
    );

    let report = dir.path().join("goaccess.json");
    let out = std::process::Command::new("goaccess")
        .arg(server.data.join("bitacoras/access.log"))
        .args(["--log-format=COMBINED", "--no-global-config", "-o"])
        .arg(&report)
        .output()
        .expect("goaccess must be installed (apt-get install -y goaccess)");
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(v["general"]["total_requests"], 6, "{}", v["general"]);
    assert_eq!(v["general"]["failed_requests"], 0, "every line parsed");
}

#[test]
fn every_encoding_decompresses_to_the_corte_bytes() {
    let (_dir, server, css) = started();
    let url = server.url("/css/prep.css");
    // Variants are made after the corte goes live; until then the file goes as it is.
    let wait_for = |coding: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = curl(&url, &["-H", &format!("Accept-Encoding: {coding}")]);
            if r.header("content-encoding") == Some(coding) {
                return r;
            }
            assert_eq!(
                r.body, css,
                "before its variant exists the file is sent as it is"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "no {coding} variant after 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let br = wait_for("br");
    wait_for("gzip");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut brotli::Decompressor::new(&br.body[..], 4096),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain, css);
    assert!(br.body.len() < css.len() / 3);
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));

    let gz = curl(&url, &["--compressed", "-H", "Accept-Encoding: gzip"]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gz.body, css,
        "curl --compressed inflates it back to the file"
    );

    let identity = curl(&url, &["-H", "Accept-Encoding: gzip;q=0, br;q=0"]);
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, css);
    let preferred = curl(&url, &["-H", "Accept-Encoding: br;q=0.5, gzip;q=0.9"]);
    assert_eq!(preferred.header("content-encoding"), Some("gzip"));

    let etags: std::collections::HashSet<&str> = [&br, &gz, &identity]
        .iter()
        .map(|r| r.header("etag").unwrap())
        .collect();
    assert_eq!(etags.len(), 3, "one strong ETag per variant");
    let again = curl(
        &url,
        &[
            "-H",
            "Accept-Encoding: br",
            "-H",
            &format!("If-None-Match: {}", br.header("etag").unwrap()),
        ],
    );
    assert_eq!(again.status, 304);
    // Files under 256 bytes are not worth a variant.
    let main = curl(
        &server.url("/json/main.json"),
        &["-H", "Accept-Encoding: br"],
    );
    assert_eq!(
        main.header("content-encoding"),
        None,
        "too small to be worth it"
    );
}

#[test]
fn metrics_and_the_status_page_show_the_traffic_and_the_corte() {
    let (_dir, server, _) = started();
    for _ in 0..3 {
        curl(&server.url("/json/main.json"), &[]);
    }
    curl(&server.url("/no-existe"), &[]);
    let metrics = curl(&server.admin("/metrics"), &[]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text();
    let count = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{needle} missing in:\n{text}"))
    };
    assert!(count("difusor_http_requests_total{status=\"200\",encoding=\"Identity\"}") >= 3.0);
    assert_eq!(
        count("difusor_http_requests_total{status=\"404\",encoding=\"Identity\"}"),
        1.0
    );
    assert!(count("difusor_http_request_duration_seconds_count") >= 4.0);
    assert_eq!(count("difusor_packages{outcome=\"published\"}"), 1.0);
    assert!(count("difusor_live_corte_time_seconds") > 1.7e9);

    let page = curl(&server.admin("/"), &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("Live corte 20240602_2000"), "{html}");
    assert!(html.contains("<svg") && html.contains("requests</title>"));
    assert!(
        html.contains("no publish_start is set"),
        "an open gate without a start is loud"
    );
}

#[test]
fn framing_is_allowed_unless_narrowed() {
    let (_dir, server, _) = started();
    assert_eq!(
        curl(&server.url("/"), &[]).header("content-security-policy"),
        None
    );
    let dir = tempfile::tempdir().unwrap();
    let narrowed = Server::start(
        &dir.path().join("d"),
        &["--frame-ancestors", "'self' https://portal.example.mx"],
    );
    drop_file(
        &narrowed.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    narrowed.wait_corte("20240602_2000");
    assert_eq!(
        curl(&narrowed.url("/"), &[]).header("content-security-policy"),
        Some("frame-ancestors 'self' https://portal.example.mx")
    );
}

#[test]
fn each_worker_serves_the_public_port_and_no_second_server_can_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--workers", "3"]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    // One thread of its own per worker: (name, times it was woken so far).
    let pid = server.pid().unwrap();
    let workers = || -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| {
                let task = t.unwrap().path();
                let name = std::fs::read_to_string(task.join("comm")).ok()?;
                let status = std::fs::read_to_string(task.join("status")).ok()?;
                let woken = status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                    .trim()
                    .parse()
                    .ok()?;
                Some((name.trim().to_owned(), woken))
            })
            .filter(|(name, _)| name.starts_with("http-worker-"))
            .collect();
        found.sort();
        found
    };
    let before = workers();
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["http-worker-0", "http-worker-1", "http-worker-2"]);
    // Many connections, all answered, and every worker answers some: an idle worker sleeps
    // in its poll, so one that is woken has taken connections of its own.
    let handles: Vec<_> = (0..60)
        .map(|_| {
            let url = server.url("/json/main.json");
            std::thread::spawn(move || curl(&url, &[]).status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    for ((name, was), (_, now)) in before.iter().zip(workers()) {
        assert!(now > *was, "{name} served no connection");
    }

    // A second server on the same port is refused plainly, and the first one keeps it.
    let other = dir.path().join("other");
    let out = difusor()
        .args(["serve", "--data-dir", other.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", server.port)])
        .args(["--admin-listen", "127.0.0.1:0", "--workers", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{} (setting `listen`): is another server using it?",
            server.port
        )),
        "{stderr}"
    );
    for _ in 0..20 {
        assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 200);
    }
}

/// A folder asked for without its trailing slash is redirected to itself with one, its name
/// percent-encoded in `Location`: a folder named `a?b` or `a%41` is reached, not a query or
/// another name, and one named `año` is named in ASCII.
#[test]
fn a_folder_is_redirected_to_its_own_name_whatever_its_characters() {
    let (_dir, server) = serving(
        &[],
        &[
            ("año/index.html", b"<p>anio</p>".as_slice()),
            ("a?b/index.html", b"<p>pregunta</p>".as_slice()),
            ("a%41/index.html", b"<p>porciento</p>".as_slice()),
            ("aA/index.html", b"<p>otra</p>".as_slice()),
        ],
    );
    for (asked, location, page) in [
        ("/a%C3%B1o", "/a%C3%B1o/", "<p>anio</p>"),
        ("/a%3Fb", "/a%3Fb/", "<p>pregunta</p>"),
        ("/a%2541", "/a%2541/", "<p>porciento</p>"),
    ] {
        let r = curl(&server.url(asked), &[]);
        assert_eq!(r.status, 301, "{asked}");
        assert_eq!(r.header("location"), Some(location), "{asked}");
        let followed = curl(&server.url(location), &[]);
        assert_eq!(followed.status, 200, "{location}");
        assert_eq!(followed.text(), page, "{location}");
    }
}
