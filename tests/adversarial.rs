//! Invariants 2 and 7: every bad package is rejected with its own reason in the journal, the
//! live corte and its bytes stay as they were, and the process lives on.

use crate::support::*;

const LIMITS: &[&str] = &[
    "--max-members",
    "1000",
    "--max-member-bytes",
    "8MiB",
    "--max-unpacked-bytes",
    "64MiB",
    "--max-ratio",
    "200",
    "--max-depth",
    "2",
    "--max-name-len",
    "255",
    "--max-package-bytes",
    "4MiB",
];

#[test]
fn bad_packages_leave_the_live_corte_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), LIMITS);
    let good = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), "20240602_2000_PREP_SITIO.zip", &good);
    server.wait_corte("20240602_2000");
    let before_main = curl(&server.url("/json/main.json"), &[]);
    let before_index = curl(&server.url("/"), &[]);

    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut corpus = corpus::write_bad_packages(&staging);
    // One more: a package over max_package_bytes, refused before it is stored.
    let big = corpus::noise(5 * 1024 * 1024);
    std::fs::write(staging.join("20240602_2359_PREP_GRANDE.zip"), &big).unwrap();
    corpus.push(corpus::BadPackage {
        file_name: "20240602_2359_PREP_GRANDE.zip".into(),
        reason: "max_package_bytes",
    });
    assert!(
        corpus.len() >= 25,
        "the corpus has {} packages",
        corpus.len()
    );

    let mut reasons = std::collections::HashSet::new();
    for (n, bad) in corpus.iter().enumerate() {
        for ext in [".sha256", ".minisig"] {
            let side = staging.join(format!("{}{ext}", bad.file_name));
            if side.exists() {
                std::fs::copy(
                    &side,
                    server.entrada().join(format!("{}{ext}", bad.file_name)),
                )
                .unwrap();
            }
        }
        let bytes = std::fs::read(staging.join(&bad.file_name)).unwrap();
        drop_file(&server.entrada(), &bad.file_name, &bytes);
        let status = server.wait_status(&format!("rejection of {}", bad.file_name), |s| {
            s["counts"]["rejected"].as_i64() == Some(n as i64 + 1)
        });
        assert_eq!(
            status["live"]["corte"], "20240602_2000",
            "{} changed the live corte",
            bad.file_name
        );
        let rejected = events(&server, "rejected");
        let event = rejected
            .iter()
            .find(|e| {
                e["name"] == bad.file_name.as_str() || e["detail"]["name"] == bad.file_name.as_str()
            })
            .unwrap_or_else(|| panic!("no rejection recorded for {}", bad.file_name));
        let reason = event["detail"]["reason"].as_str().unwrap().to_owned();
        assert!(
            reason.contains(bad.reason),
            "{}: reason {reason:?} should mention {:?}",
            bad.file_name,
            bad.reason
        );
        reasons.insert(reason);
        assert!(server.alive(), "the server died on {}", bad.file_name);
    }
    assert!(
        reasons.len() >= corpus.len() * 3 / 4,
        "reasons should be specific: {reasons:#?}"
    );

    let after_main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(before_main.body, after_main.body);
    assert_eq!(before_main.header("etag"), after_main.header("etag"));
    assert_eq!(before_index.body, curl(&server.url("/"), &[]).body);
    // The oversized file was kept aside, not deleted.
    assert!(
        server
            .entrada()
            .join(".rechazado.20240602_2359_PREP_GRANDE.zip")
            .exists()
    );
}

#[test]
fn hostile_request_paths_are_refused() {
    let (_dir, server) = serving(&[], &[]);
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a%5c..%5cb",
        "/%ff",
        "/a%00b",
    ] {
        let r = curl(&server.url(path), &["--path-as-is"]);
        assert_eq!(r.status, 400, "{path}");
        assert!(!r.text().contains("root:"), "{path}");
    }
    let r = curl(&server.url("/"), &["-X", "POST", "-d", "x"]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = curl(&server.url("/no-existe.html"), &[]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("No encontrado"));
}

/// A file's path followed by `/` or `/.` names no file, as nginx answers it: the page is
/// never served at an address whose relative links resolve against the wrong folder, nor
/// cached under a second one. A folder's finds its index.
#[test]
fn a_file_path_followed_by_a_slash_or_a_dot_segment_is_not_found() {
    let (_dir, server) = serving(&[], &[("mapa/index.html", b"<p>mapa</p>")]);
    for path in [
        "/index.html/.",
        "/index.html/",
        "/json/main.json/.",
        "/json/main.json/",
        "/json/main.json/%2e",
        "/json/main.json/./",
        "/json/./main.json/.",
    ] {
        let r = curl(&server.url(path), &["--path-as-is"]);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    for (path, body) in [
        ("/index.html", "Corte 20240602_2000"),
        ("/.", "Corte 20240602_2000"),
        ("/json/./main.json", "20240602_2000"),
        ("/mapa/.", "<p>mapa</p>"),
        ("/mapa/./", "<p>mapa</p>"),
    ] {
        let r = curl(&server.url(path), &["--path-as-is"]);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains(body), "{path}: {}", r.text());
    }
    let r = curl(&server.url("/mapa"), &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/mapa/"));
}

#[test]
fn before_publish_start_no_result_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("d"),
        &[
            "--publish-start",
            "2099-06-02T20:00:00-06:00",
            "--publish-end",
            "",
        ],
    );
    let pkg = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &pkg);
    server.wait_corte("20240602_2000");
    assert_eq!(server.status()["gate"]["open"], false);
    let etag = format!("\"{}\"", sha256_hex(br#"{"corte":"20240602_2000"}"#));
    let inm = format!("If-None-Match: {etag}");
    let cases: &[(&str, &[&str])] = &[
        ("/", &[]),
        ("/json/main.json", &[]),
        ("/json/main.json", &["-I"]),
        ("/json/main.json", &["-H", &inm]),
        ("/json/main.json", &["--compressed"]),
        ("/json/main.json", &["-H", "Range: bytes=0-5"]),
        ("/no-existe", &[]),
    ];
    for (path, args) in cases {
        let r = curl(&server.url(path), args);
        assert_eq!(r.status, 503, "{path} {args:?}");
        assert!(r.header("retry-after").is_some());
        assert!(r.header("x-prep-corte").is_none(), "{path} {args:?}");
        assert!(
            !r.text().contains("20240602_2000"),
            "{path} {args:?}: results leaked"
        );
        if !args.contains(&"-I") {
            assert!(
                r.text()
                    .contains("se publicarán a partir del 02/06/2099 a las 20:00"),
                "{}",
                r.text()
            );
        }
    }
    // A method the site does not serve is refused before the gate is asked: no results either.
    let post = curl(&server.url("/json/main.json"), &["-X", "POST"]);
    assert_eq!(post.status, 405);
    assert!(post.header("x-prep-corte").is_none());
    assert!(!post.text().contains("20240602_2000"), "results leaked");
    // Operators preview the site on the admin listener meanwhile.
    let preview = curl(&server.admin("/preview/json/main.json"), &[]);
    assert_eq!(preview.status, 200);
    assert_eq!(preview.text(), r#"{"corte":"20240602_2000"}"#);
    let folder = curl(&server.admin("/preview/json"), &[]);
    assert_eq!(folder.status, 404);
    assert_eq!(
        curl(&server.admin("/preview/"), &[]).text(),
        "<html><body>Corte 20240602_2000</body></html>"
    );
}

/// A notice of nothing but white space, or of more than 16 KiB, is refused whether a
/// server runs or the command records it for the next start: an operator's slip never
/// replaces the results with an empty page.
#[test]
fn an_empty_or_oversized_notice_is_refused_with_or_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let long = "a".repeat(16 * 1024 + 1);
    let nobody = ReservedPort::hold();
    for (text, says) in [
        (" \t ", "the notice is empty"),
        (long.as_str(), "over the limit"),
    ] {
        let out = difusor()
            .args(["notice", "on", "--text", text, "--data-dir"])
            .arg(&data)
            .args(["--admin-listen", &nobody.addr()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let server = Server::start(&data, &[]);
    assert!(events(&server, "notice-on").is_empty());
    for (text, says) in [
        (" \t ", "the notice is empty"),
        (long.as_str(), "over the limit"),
    ] {
        let out = server.run(&["notice", "on", "--text", text]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert!(server.status()["gate"]["notice"].is_null());
    assert!(events(&server, "notice-on").is_empty());
    // A notice with white space around it is put in force without it.
    assert_success(&server.run(&["notice", "on", "--text", "  Aviso del Instituto.\n"]));
    assert_eq!(server.status()["gate"]["notice"], "Aviso del Instituto.");
}

#[test]
fn the_institutes_notice_replaces_every_result_until_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let css = "body { color: black }\n".repeat(100);
    let pkg = site_package("20240602_2000", &[("css/prep.css", css.as_bytes())]);
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &pkg);
    server.wait_corte("20240602_2000");
    let etag = curl(&server.url("/css/prep.css"), &[])
        .header("etag")
        .unwrap()
        .to_owned();

    let text = "El Instituto suspendió la difusión en este portal.";
    let out = server.run(&["notice", "on", "--text", text]);
    assert_success(&out);
    let inm = format!("If-None-Match: {etag}");
    let cases: &[(&str, &[&str])] = &[
        ("/", &[]),
        ("/json/main.json", &[]),
        ("/css/prep.css", &["--compressed"]),
        ("/css/prep.css", &["-H", "Accept-Encoding: br"]),
        ("/css/prep.css", &["-H", "Range: bytes=0-10"]),
        ("/css/prep.css", &["-H", &inm]),
        ("/no-existe", &[]),
    ];
    let check = |server: &Server| {
        for (path, args) in cases {
            let r = curl(&server.url(path), args);
            assert_eq!(r.status, 200, "{path} {args:?}");
            assert!(r.text().contains(text), "{path} {args:?}: {}", r.text());
            assert!(r.header("x-prep-corte").is_none(), "{path} {args:?}");
            assert!(
                !r.text().contains("color: black") && !r.text().contains("20240602"),
                "{path} {args:?}"
            );
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
    };
    check(&server);
    assert_eq!(server.status()["gate"]["notice"], text);
    // It survives a restart.
    server.restart();
    check(&server);

    let out = server.run(&["notice", "off"]);
    assert_success(&out);
    assert_eq!(curl(&server.url("/css/prep.css"), &[]).body, css.as_bytes());
    assert_eq!(events(&server, "notice-on").len(), 1);
    assert_eq!(events(&server, "notice-off").len(), 1);
}
