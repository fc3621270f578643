//! From a received package to a published corte, through the CLI and real sockets:
//! invariants 1–4 and 6 of DESIGN.md on real and generated packages.

use std::io::Read;

use crate::support::*;

fn inner_file(outer: &[u8], inner_zip: &str, member: &str) -> Vec<u8> {
    let mut outer = zip::ZipArchive::new(std::io::Cursor::new(outer)).unwrap();
    let mut inner_bytes = Vec::new();
    outer
        .by_name(inner_zip)
        .unwrap()
        .read_to_end(&mut inner_bytes)
        .unwrap();
    let mut inner = zip::ZipArchive::new(std::io::Cursor::new(inner_bytes)).unwrap();
    let mut out = Vec::new();
    inner
        .by_name(member)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn real_data_package_is_served_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    let sha = sha256_hex(&real);
    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.zip", &real);
    server.wait_corte("20210601_1852");

    let zip = curl(&server.url("/datos/20210601_1852_PREP_CAMP.zip"), &[]);
    assert_eq!(zip.status, 200);
    assert!(zip.body == real, "the package must be served unchanged");
    assert_eq!(zip.header("x-prep-corte"), Some("20210601_1852"));
    assert_eq!(zip.header("x-prep-package"), Some(sha.as_str()));

    for (inner, csv) in [
        ("20210601_1852_PREP_GOB_CAMP.zip", "CAMP_GOB_2021.csv"),
        ("20210601_1852_PREP_GOB_CAMP.zip", "LEEME.txt"),
        (
            "20210601_1852_PREP_DIP_LOC_CAMP.zip",
            "CAMP_DIP_LOC_2021.csv",
        ),
        ("20210601_1852_PREP_AYUN_CAMP.zip", "CAMP_AYUN_2021.csv"),
    ] {
        let stem = inner.trim_end_matches(".zip");
        let r = curl(
            &server.url(&format!("/datos/20210601_1852_PREP_CAMP/{stem}/{csv}")),
            &[],
        );
        assert_eq!(r.status, 200, "{stem}/{csv}");
        assert!(
            r.body == inner_file(&real, inner, csv),
            "{stem}/{csv} must be byte-identical"
        );
        assert_eq!(r.header("x-prep-package"), Some(sha.as_str()));
    }
    let listing = curl(&server.url("/datos/"), &[]);
    assert_eq!(listing.status, 200);
    assert!(
        listing.text().contains(&sha),
        "the listing shows the package's SHA-256"
    );
    assert!(listing.text().contains("01/06/2021 18:52"));

    let status = server.status();
    assert_eq!(status["live"]["package"], sha);
    assert_eq!(status["counts"]["published"], 1);
    assert!(
        !server
            .entrada()
            .join("20210601_1852_PREP_CAMP.zip")
            .exists(),
        "taken from the intake folder"
    );
}

#[test]
fn every_data_package_stays_downloadable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.zip", &real);
    server.wait_corte("20210601_1852");
    let inner = zip_bytes(&[(
        "CAMP_GOB_2021.csv",
        b"GUBERNATURA\n01/06/2021 19:22 (UTC-5)\n".as_slice(),
    )]);
    let next = zip_bytes(&[("20210601_1922_PREP_GOB_CAMP.zip", inner.as_slice())]);
    drop_file(&server.entrada(), "20210601_1922_PREP_CAMP.zip", &next);
    server.wait_corte("20210601_1922");

    for _ in 0..2 {
        assert!(curl(&server.url("/datos/20210601_1852_PREP_CAMP.zip"), &[]).body == real);
        assert!(curl(&server.url("/datos/20210601_1922_PREP_CAMP.zip"), &[]).body == next);
        let csv = curl(
            &server.url(
                "/datos/20210601_1922_PREP_CAMP/20210601_1922_PREP_GOB_CAMP/CAMP_GOB_2021.csv",
            ),
            &[],
        );
        assert_eq!(csv.status, 200);
        let old_csv = curl(
            &server.url(
                "/datos/20210601_1852_PREP_CAMP/20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv",
            ),
            &[],
        );
        assert_eq!(
            old_csv.status, 404,
            "only the newest data package is unpacked"
        );
        let listing = curl(&server.url("/datos/"), &[]).text();
        let (newer, older) = (sha256_hex(&next), sha256_hex(&real));
        assert!(
            listing.find(&newer).unwrap() < listing.find(&older).unwrap(),
            "newest first"
        );
        server.restart();
    }
}

/// A data package sent again under the same name with other bytes (the institute corrected
/// it): `/datos/` keeps one row for the name, the one whose bytes its link serves, before and
/// after a restart; a listing never shows a SHA-256 its link does not give.
#[test]
fn a_data_package_sent_again_with_other_bytes_is_listed_once_with_what_its_link_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let name = "20210601_1922_PREP_CAMP.zip";
    let version = |corte: &str| {
        let inner = zip_bytes(&[(
            "CAMP_GOB_2021.csv",
            format!("GUBERNATURA\n{corte} (UTC-5)\n").as_bytes(),
        )]);
        zip_bytes(&[("20210601_1922_PREP_GOB_CAMP.zip", inner.as_slice())])
    };
    let (first, second) = (version("01/06/2021 19:22"), version("01/06/2021 19:22 "));
    assert_ne!(first, second);
    drop_file(&server.entrada(), name, &first);
    server.wait_corte("20210601_1922");
    let published = server.status()["counts"]["published"].as_u64().unwrap();
    drop_file(&server.entrada(), name, &second);
    server.wait_status("the second version published", |s| {
        s["counts"]["published"].as_u64() == Some(published + 1)
    });
    for _ in 0..2 {
        let served = curl(&server.url(&format!("/datos/{name}")), &[]);
        assert!(served.body == second, "the link serves the second version");
        let listing = curl(&server.url("/datos/"), &[]).text();
        assert_eq!(
            listing.matches(&format!(">{name}<")).count(),
            1,
            "{listing}"
        );
        assert!(listing.contains(&sha256_hex(&second)), "{listing}");
        assert!(!listing.contains(&sha256_hex(&first)), "{listing}");
        server.restart();
    }
}

/// A site package whose files take the paths of the downloads (`/datos/`, a listed zip, the
/// newest data package's unpacked files): the downloads stay, so the bytes at each listed
/// link are the SHA-256 the listing shows; the site's other files under `datos/` are served;
/// the files left out are journaled; and a restart rebuilds the same site.
#[test]
fn a_site_package_cannot_take_the_place_of_a_listed_download() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    let sha = sha256_hex(&real);
    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.zip", &real);
    server.wait_corte("20210601_1852");
    let unpacked = "datos/20210601_1852_PREP_CAMP/20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv";
    let site = site_package(
        "20210601_1900",
        &[
            (
                "datos/20210601_1852_PREP_CAMP.zip",
                b"otros bytes".as_slice(),
            ),
            ("datos/index.html", b"<p>otra lista</p>"),
            (unpacked, b"otra tabla"),
            ("datos/propio.json", b"{\"propio\":1}"),
        ],
    );
    drop_file(&server.entrada(), "20210601_1900_PREP_SITIO.zip", &site);
    server.wait_corte("20210601_1900");
    let csv = inner_file(
        &real,
        "20210601_1852_PREP_GOB_CAMP.zip",
        "CAMP_GOB_2021.csv",
    );
    for round in 0..2 {
        let zip = curl(&server.url("/datos/20210601_1852_PREP_CAMP.zip"), &[]);
        assert!(
            zip.body == real,
            "round {round}: the listed zip is the package's"
        );
        assert_eq!(zip.header("x-prep-package"), Some(sha.as_str()));
        let listing = curl(&server.url("/datos/"), &[]).text();
        assert!(
            listing.contains(&sha),
            "round {round}: the listing is difusor's"
        );
        assert!(curl(&server.url(&format!("/{unpacked}")), &[]).body == csv);
        let own = curl(&server.url("/datos/propio.json"), &[]);
        assert_eq!(
            own.text(),
            "{\"propio\":1}",
            "round {round}: the site's own file"
        );
        assert!(
            curl(&server.url("/index.html"), &[])
                .text()
                .contains("20210601_1900")
        );
        server.restart();
        server.wait_corte("20210601_1900");
    }
    let warning = events(&server, "warning")
        .into_iter()
        .find(|w| w["detail"]["check"] == "datos")
        .expect("the files left out are journaled");
    let said = warning["detail"]["warning"].as_str().unwrap_or("");
    assert!(
        said.starts_with(
            "files of this site package take the path of a download under /datos/ and are not \
             served there (the download is): "
        ),
        "{said}"
    );
    let named = warning["detail"]["files"].to_string();
    for path in [
        "/datos/20210601_1852_PREP_CAMP.zip",
        "/datos/index.html",
        unpacked,
    ] {
        assert!(named.contains(path), "{path} is named: {named}");
    }
    assert!(!named.contains("propio"), "{named}");
}

#[test]
fn overlay_replace_duplicate_older_rollback_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let entrada = server.entrada();

    let a = site_package("20240602_2000", &[("css/estilo.css", b"body{}")]);
    drop_file(&entrada, "20240602_2000_PREP_SITIO.zip", &a);
    server.wait_corte("20240602_2000");

    // Overlay: B carries only json/main.json; the rest stays from A.
    let b = zip_bytes(&[("json/main.json", br#"{"corte":"20240602_2015"}"#)]);
    drop_file(&entrada, "20240602_2015_PREP_SITIO.zip", &b);
    server.wait_corte("20240602_2015");
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(main.text(), r#"{"corte":"20240602_2015"}"#);
    assert_eq!(main.header("x-prep-package"), Some(sha256_hex(&b).as_str()));
    let css = curl(&server.url("/css/estilo.css"), &[]);
    assert_eq!(css.body, b"body{}");
    assert_eq!(
        css.header("x-prep-package"),
        Some(sha256_hex(&a).as_str()),
        "kept from A"
    );
    assert_eq!(css.header("x-prep-corte"), Some("20240602_2015"));
    let index = curl(&server.url("/"), &[]);
    assert_eq!(
        index.text(),
        "<html><body>Corte 20240602_2000</body></html>"
    );

    // Duplicate: the same bytes again change nothing and are recorded once.
    drop_file(&entrada, "20240602_2015_PREP_SITIO.zip", &b);
    server.wait_received(3);
    server.wait_status("duplicate noted", |_| {
        !events(&server, "duplicate").is_empty()
    });
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2015"));

    // Older: archived, journaled, not published.
    let old = site_package("20240602_1945", &[]);
    drop_file(&entrada, "20240602_1945_PREP_SITIO.zip", &old);
    server.wait_received(4);
    server.wait_status("older noted", |_| !events(&server, "older").is_empty());
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).text(),
        r#"{"corte":"20240602_2015"}"#
    );
    let archived = server
        .data
        .join("archivo")
        .join(&sha256_hex(&old)[..2])
        .join(sha256_hex(&old));
    assert_eq!(
        std::fs::read(archived).unwrap(),
        old,
        "the older package is kept in the archive"
    );

    // Replace: a package marked complete is the whole site.
    let c = zip_bytes(&[("index.html", b"<html>completo</html>")]);
    drop_file(&entrada, "20240602_2030_PREP_SITIO_COMPLETO.zip", &c);
    server.wait_corte("20240602_2030");
    assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 404);
    assert_eq!(curl(&server.url("/css/estilo.css"), &[]).status, 404);
    assert_eq!(curl(&server.url("/"), &[]).text(), "<html>completo</html>");

    // Rollback to 20:15, through the running server.
    let out = server.run(&["rollback", "20240602_2015"]);
    assert_success(&out);
    server.wait_corte("20240602_2015");
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).text(),
        r#"{"corte":"20240602_2015"}"#
    );
    assert_eq!(curl(&server.url("/css/estilo.css"), &[]).body, b"body{}");
    assert_eq!(events(&server, "rollback").len(), 1);

    // Restart: the same corte and the same bytes, before any new package.
    let before: Vec<Vec<u8>> = ["/", "/json/main.json", "/css/estilo.css"]
        .iter()
        .map(|p| curl(&server.url(p), &[]).body)
        .collect();
    server.restart();
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2015"));
    let after: Vec<Vec<u8>> = ["/", "/json/main.json", "/css/estilo.css"]
        .iter()
        .map(|p| curl(&server.url(p), &[]).body)
        .collect();
    assert_eq!(before, after);

    // A newer package after the rollback overlays the rolled-back site.
    let d = zip_bytes(&[("json/main.json", br#"{"corte":"20240602_2045"}"#)]);
    drop_file(&entrada, "20240602_2045_PREP_SITIO.zip", &d);
    server.wait_corte("20240602_2045");
    assert_eq!(curl(&server.url("/css/estilo.css"), &[]).body, b"body{}");

    // The older package that was only archived is published when an operator asks.
    let out = server.run(&["rollback", "20240602_1945"]);
    assert_success(&out);
    server.wait_corte("20240602_1945");
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).text(),
        r#"{"corte":"20240602_1945"}"#
    );
    server.restart();
    assert_eq!(server.live_corte().as_deref(), Some("20240602_1945"));

    // A corte nobody sent is the operator's mistake, not this server's: refused with a plain
    // message (exit status 1, "rejected"; the admin listener answers 404), nothing changed.
    let out = server.run(&["rollback", "20990101_0000"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("\"rejected\"")
            && stdout.contains("no corte \\\"20990101_0000\\\" was published")
            && stdout.contains("difusor history"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("ours") && !stderr.contains("this server's side"),
        "{stdout}{stderr}"
    );
    let r = curl(
        &server.admin("/rollback?corte=20990101_0000"),
        &["-X", "POST"],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("difusor history"), "{}", r.text());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_1945"));
}

/// A rollback never sends a file's `Last-Modified` back in time: a client revalidating by
/// date alone (`If-Modified-Since`, no ETag) holding the withdrawn corte's copy is sent the
/// file brought back, before and after a restart, and one holding that is told 304.
#[test]
fn a_rollback_is_news_to_a_client_revalidating_by_date_alone() {
    let second = std::time::Duration::from_millis(1100);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let entrada = server.entrada();
    drop_file(
        &entrada,
        "20240602_2000_PREP_SITIO.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    std::thread::sleep(second); // received a second later, as cortes minutes apart are
    let b = zip_bytes(&[("json/main.json", br#"{"corte":"20240602_2015"}"#)]);
    drop_file(&entrada, "20240602_2015_PREP_SITIO.zip", &b);
    server.wait_corte("20240602_2015");
    let withdrawn = curl(&server.url("/json/main.json"), &[]);
    let held = withdrawn.header("last-modified").unwrap().to_owned();
    std::thread::sleep(second);
    assert_success(&server.run(&["rollback", "20240602_2000"]));
    server.wait_corte("20240602_2000");
    for restarted in [false, true] {
        if restarted {
            server.restart();
        }
        let since = |date: &str| {
            curl(
                &server.url("/json/main.json"),
                &["-H", &format!("If-Modified-Since: {date}")],
            )
        };
        let back = since(&held);
        assert_eq!(back.status, 200, "restarted: {restarted}; held {held}");
        assert_eq!(back.text(), r#"{"corte":"20240602_2000"}"#);
        let date = back.header("last-modified").unwrap();
        assert_ne!(date, held);
        assert_eq!(since(date).status, 304, "restarted: {restarted}");
    }
}

/// Two cortes received within one second leave `json/main.json` with the same
/// `Last-Modified`. A client revalidating by date alone (`If-Modified-Since`, no ETag) that
/// holds the first is sent the second, not told 304; a range asked `If-Range` that date is
/// sent whole, not spliced onto the first; so too after a restart. A file the second corte
/// left as it was still gets 304, and so does the next corte's file, received a second
/// later, on its own date.
#[test]
fn a_corte_received_within_the_second_of_the_one_before_is_news_to_a_client_revalidating_by_date() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let entrada = server.entrada();
    let css: (&str, &[u8]) = ("css/estilo.css", b"body { color: #333 }");
    let since = |server: &Server, path: &str, date: &str, extra: &[&str]| {
        let mut args = vec!["-H".to_owned(), format!("If-Modified-Since: {date}")];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&server.url(path), &args)
    };
    let mut same_second = None;
    for hour in 19..24 {
        // At the start of a second, so that both arrive within it.
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis()
            > 50
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (first, second) = (format!("20240602_{hour}00"), format!("20240602_{hour}15"));
        let publish = |corte: &str| {
            let name = format!("{corte}_PREP_SITIO.zip");
            drop_file(&entrada, &name, &site_package(corte, &[css]));
            server.wait_corte(corte);
            curl(&server.url("/json/main.json"), &[])
        };
        let held = publish(&first);
        let now = publish(&second);
        let date = held.header("last-modified").unwrap().to_owned();
        if now.header("last-modified") == Some(date.as_str()) {
            same_second = Some((date, now.text()));
            break;
        }
    }
    let (date, now) = same_second.expect("no two cortes were received within one second");
    for restarted in [false, true] {
        if restarted {
            server.restart();
        }
        let revalidated = since(&server, "/json/main.json", &date, &[]);
        assert_eq!(revalidated.status, 200, "restarted: {restarted}");
        assert_eq!(revalidated.text(), now);
        let if_range = format!("If-Range: {date}");
        let range = since(
            &server,
            "/json/main.json",
            &date,
            &["-H", &if_range, "-r", "0-4"],
        );
        assert_eq!(range.status, 200, "restarted: {restarted}");
        assert_eq!(range.text(), now);

        // The file the second corte did not change keeps answering its date.
        let style = curl(&server.url("/css/estilo.css"), &[]);
        let style_date = style.header("last-modified").unwrap();
        let revalidated = since(&server, "/css/estilo.css", style_date, &[]);
        assert_eq!(revalidated.status, 304, "restarted: {restarted}");
    }

    // The next corte, a second later: its date is its own again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    drop_file(
        &entrada,
        "20240603_0100_PREP_SITIO.zip",
        &site_package("20240603_0100", &[css]),
    );
    server.wait_corte("20240603_0100");
    let next = curl(&server.url("/json/main.json"), &[]);
    let next_date = next.header("last-modified").unwrap();
    assert_ne!(next_date, date);
    assert_eq!(
        since(&server, "/json/main.json", next_date, &[]).status,
        304
    );
}

#[test]
fn ingest_command_works_with_and_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let pkg = dir.path().join("20240602_2100_PREP_SITIO.zip");
    std::fs::write(&pkg, site_package("20240602_2100", &[])).unwrap();
    std::fs::write(
        dir.path().join("20240602_2100_PREP_SITIO.zip.sha256"),
        format!(
            "{}  20240602_2100_PREP_SITIO.zip\n",
            sha256_hex(&std::fs::read(&pkg).unwrap())
        ),
    )
    .unwrap();

    // No server: processed directly on the data folder (the generic profile's 2027 window
    // would hold a 2024 corte).
    let out = ingest_without_server(&pkg, &data);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published");

    // The server starts on it and serves that corte.
    let server = Server::start(&data, &[]);
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));

    // Through the running server: a bad sidecar is rejected, exit status 1.
    let bad = dir.path().join("20240602_2115_PREP_SITIO.zip");
    std::fs::write(&bad, site_package("20240602_2115", &[])).unwrap();
    std::fs::write(
        dir.path().join("20240602_2115_PREP_SITIO.zip.sha256"),
        "0".repeat(64),
    )
    .unwrap();
    let out = server.run(&["ingest", bad.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    let received = events(&server, "received");
    assert!(received.iter().any(|e| e["detail"]["channel"] == "cli"));

    // And a good one is published.
    std::fs::write(
        dir.path().join("20240602_2115_PREP_SITIO.zip.sha256"),
        sha256_hex(&std::fs::read(&bad).unwrap()),
    )
    .unwrap();
    let out = server.run(&["ingest", bad.to_str().unwrap()]);
    assert_success(&out);
    server.wait_corte("20240602_2115");
}

/// A package over `max_package_bytes` sent through the running server's admin listener is
/// rejected as from any other channel: the outcome `rejected`, exit status 1, journaled,
/// nothing of it kept, the live corte unchanged.
#[test]
fn a_package_over_the_limit_sent_to_a_running_server_is_rejected_exit_1_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--max-package-bytes", "64KiB"]);
    let first = dir.path().join("20240602_2100_PREP_SITIO.zip");
    std::fs::write(&first, site_package("20240602_2100", &[])).unwrap();
    assert_success(&server.run(&["ingest", first.to_str().unwrap()]));

    // Far over the limit: the server answers before the sender is done sending, and the
    // sender still reads that answer (not a connection reset under its last megabytes).
    let big = dir.path().join("20240602_2115_PREP_SITIO.zip");
    let noise = corpus::noise(8 << 20);
    std::fs::write(&big, site_package("20240602_2115", &[("big.bin", &noise)])).unwrap();
    let out = server.run(&["ingest", big.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("max_package_bytes"),
        "{v}"
    );
    let rejected = events(&server, "rejected");
    assert!(
        rejected.iter().any(|e| e["detail"]["channel"] == "cli"
            && e["detail"]["name"] == "20240602_2115_PREP_SITIO.zip"
            && e["detail"]["fault"] == "sender"),
        "{rejected:?}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("d/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn file_written_in_place_is_taken_only_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--settle", "1s"]);
    let pkg = site_package("20240602_2200", &[("big.bin", &vec![7u8; 300_000])]);
    let path = server.entrada().join("20240602_2200_PREP_SITIO.zip");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in pkg.chunks(pkg.len() / 5 + 1) {
        std::io::Write::write_all(&mut f, chunk).unwrap();
        std::io::Write::flush(&mut f).unwrap();
        // The writer pauses for less than the settle time: what is tested.
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    drop(f);
    server.wait_corte("20240602_2200");
    assert_eq!(
        server.status()["counts"]["rejected"],
        0,
        "no partial file was taken"
    );
    assert_eq!(server.status()["counts"]["received"], 1);
    assert_eq!(curl(&server.url("/big.bin"), &[]).body.len(), 300_000);
}

#[test]
fn hidden_and_evidence_files_are_not_packages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    std::fs::write(
        server.entrada().join(".20240602_2000_PREP.zip.tmp"),
        b"partial",
    )
    .unwrap();
    std::fs::write(server.entrada().join("x.zip.sha256"), "0".repeat(64)).unwrap();
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    // Nothing more is taken: there is no event to wait for, so a few rescans are waited out.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(server.status()["counts"]["received"], 1);
}

#[test]
fn a_required_sidecar_is_waited_for_then_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("d"),
        &["--evidence-sidecar", "required", "--evidence-wait", "1s"],
    );
    // Sidecar first, then the package: published, and the journal says the sidecar verified.
    let good = site_package("20240602_2000", &[]);
    std::fs::write(
        server.entrada().join("20240602_2000_PREP.zip.sha256"),
        format!("{}  20240602_2000_PREP.zip\n", sha256_hex(&good)),
    )
    .unwrap();
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &good);
    server.wait_corte("20240602_2000");
    let verified = events(&server, "verified");
    assert!(
        verified[0]["detail"]["evidence"]["sidecar"]["verified"].is_string(),
        "{verified:?}"
    );
    assert!(
        !server
            .entrada()
            .join("20240602_2000_PREP.zip.sha256")
            .exists(),
        "archived with its package"
    );

    // No sidecar: after evidence_wait the package is rejected, and the live corte stays.
    drop_file(
        &server.entrada(),
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_status("the rejection", |s| s["counts"]["rejected"] == 1);
    let rejected = events(&server, "rejected");
    assert!(
        rejected[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("required"),
        "{rejected:?}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
}

/// A package whose name carries no corte time takes it from the corte line of its results
/// CSV, however the institute laid that out: after a spreadsheet's `sep=|` line (line 3, not
/// 2), unpadded (`3/6/2019 09:15`), year first (`2019/06/03 05:47`), or with lines ended by a
/// CR alone. Each is the real layout of a derived fixture.
#[test]
fn a_package_named_without_a_time_takes_its_corte_from_its_csv_in_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("d"), &[]);
    let layouts = [
        ("qroo2019_dip_special_single_row.csv", "20190603_0547"),
        ("ine2019_pue_TOTAL_VOTOS_column.csv", "20190603_0915"),
        ("ine2023_todos_los_campos_vacios.csv", "20230220_1105"),
    ];
    for (n, (file, corte)) in layouts.iter().enumerate() {
        let csv = std::fs::read(derived_fixture(file)).unwrap();
        let package = zip_bytes(&[(file, csv.as_slice())]);
        drop_file(&server.entrada(), &format!("PREP_DATOS_{n}.zip"), &package);
        server.wait_corte(corte);
    }
    let history = server.run(&["history", "--json"]);
    assert_success(&history);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let sources: Vec<&serde_json::Value> = history["cortes"]
        .as_array()
        .unwrap_or_else(|| panic!("{history:#}"))
        .iter()
        .map(|p| &p["corte_source"])
        .collect();
    assert_eq!(sources, ["csv", "csv", "csv"], "{history:#}");
}
