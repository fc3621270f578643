//! One writer per data folder: a second server on it stops at start; a command that would
//! write while a server holds it asks that server, or stops when it cannot be reached; with
//! no server, the command works on the folder itself.
//!
//! A journal behind its archive (its last rows lost with its -wal file) is found at start and
//! said, and nothing is guessed from the archive; a damaged one (in whole, one page, or cut
//! short) stops the start saying to restore it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

/// A server on `data` that published corte 20240602_2100 and was then stopped.
fn stopped_with_a_corte(data: &Path) -> Server {
    let mut server = Server::start(data, &[]);
    drop_file(
        &server.entrada(),
        "20240602_2100_PREP_SITIO.zip",
        &site_package("20240602_2100", &[]),
    );
    server.wait_corte("20240602_2100");
    server.stop();
    server
}

/// `command` (a `difusor`) run as `serve` on the data folder `data`, expected to stop by
/// itself within a minute: its output.
fn serve_until_it_stops(mut command: Command, data: &Path) -> Output {
    command.args([
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--publish-start",
        "",
    ]);
    output_within(&mut command, Duration::from_secs(60)).expect("the server stops by itself")
}

#[test]
fn a_second_server_on_the_same_data_folder_stops_at_start_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let first = Server::start(&data, &[]);
    let pid = first.pid().unwrap();

    let out = serve_until_it_stops(difusor(), &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("data folder {} is held", data.display()))
            && stderr.contains(&format!("process {pid}")),
        "{stderr}"
    );

    // The first one never noticed.
    drop_file(
        &first.entrada(),
        "20240602_2100_PREP_SITIO.zip",
        &site_package("20240602_2100", &[]),
    );
    first.wait_corte("20240602_2100");
    assert_eq!(curl(&first.url("/"), &[]).status, 200);
}

#[test]
fn a_command_that_cannot_reach_the_server_holding_the_folder_stops_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let pkg = dir.path().join("20240602_2100_PREP_SITIO.zip");
    std::fs::write(&pkg, site_package("20240602_2100", &[])).unwrap();
    let mut server = Server::start(&data, &[]);
    // An address where nothing answers.
    let nobody = ReservedPort::hold();
    let elsewhere = nobody.addr();
    let command = |sub: &[&str]| {
        difusor()
            .args(sub)
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--corte-window-margin",
                "",
                "--admin-listen",
                &elsewhere,
            ])
            .output()
            .unwrap()
    };

    for sub in [
        &["ingest", pkg.to_str().unwrap()][..],
        &["rollback", "20240602_2100"],
        &["notice", "on", "--text", "Suspendido"],
    ] {
        let out = command(sub);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{sub:?}: {stderr}");
        assert!(
            stderr.contains("is held by another difusor")
                && stderr.contains(&format!(
                    "nothing answers on its admin listener at {elsewhere}"
                ))
                && stderr.contains("admin_listen"),
            "{sub:?}: {stderr}"
        );
    }
    // Nothing was received, published or recorded behind the server's back.
    let status = server.status();
    assert_eq!(status["counts"]["received"], 0, "{status:#}");
    assert!(status["live"]["corte"].is_null(), "{status:#}");
    for kind in ["received", "published", "notice-on"] {
        assert!(events(&server, kind).is_empty(), "{kind}");
    }

    // Through the server's own admin listener the same command works.
    assert_success(&server.run(&["ingest", pkg.to_str().unwrap()]));
    server.wait_corte("20240602_2100");

    // With the server stopped, the lock is free: the command works on the folder itself.
    server.stop();
    let out = command(&["rollback", "20240602_2100"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published", "{v}");
}

#[test]
fn a_journal_this_server_cannot_write_stops_the_start_naming_it_before_any_listener() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut first = stopped_with_a_corte(&data);
    let journal = data.join("bitacora.sqlite");
    let serve = |limits: ProcessLimits| {
        let out = serve_until_it_stops(limits.command(), &data);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let said = |stderr: &str, hint: &str| {
        stderr.contains(&format!(
            "cannot open the journal {} for writing",
            journal.display()
        )) && stderr.contains(hint)
            && !stderr.contains("serving the public site")
    };

    // An operator's sqlite3 left a write transaction open on it.
    let holder = rusqlite::Connection::open(&journal).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (code, stderr) = serve(ProcessLimits::default());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(said(&stderr, "another process holds it"), "{stderr}");
    drop(holder);

    // The journal made read-only (restored by another user, say).
    let mut mode = std::fs::metadata(&journal).unwrap().permissions();
    mode.set_readonly(true);
    std::fs::set_permissions(&journal, mode.clone()).unwrap();
    let (code, stderr) = serve(ProcessLimits {
        bound_by_permissions: true,
        ..ProcessLimits::default()
    });
    assert_eq!(code, Some(2), "{stderr}");
    assert!(said(&stderr, "check its owner and mode"), "{stderr}");
    #[allow(clippy::permissions_set_readonly_false)]
    mode.set_readonly(false);
    std::fs::set_permissions(&journal, mode).unwrap();

    // Nothing was lost: the corte is served again.
    first.launch();
    first.wait_ready();
    assert_eq!(first.live_corte().as_deref(), Some("20240602_2100"));
}

#[test]
fn history_reads_a_read_only_copy_of_a_data_folder_and_writes_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    stopped_with_a_corte(&data);
    // An auditor's copy, on read-only media or under another owner.
    let copy = dir.path().join("copia");
    let run = |program: &str, args: &[&str]| {
        let status = Command::new(program).args(args).status().unwrap();
        assert!(status.success(), "{program} {args:?}");
    };
    run(
        "cp",
        &["-a", data.to_str().unwrap(), copy.to_str().unwrap()],
    );
    run("chmod", &["-R", "a-w", copy.to_str().unwrap()]);
    let files = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = files(&copy);
    let limits = ProcessLimits {
        bound_by_permissions: true,
        ..ProcessLimits::default()
    };
    let out = limits
        .command()
        .args(["history", "--json", "--data-dir"])
        .arg(&copy)
        .output()
        .unwrap();
    run("chmod", &["-R", "u+w", copy.to_str().unwrap()]);
    assert_success(&out);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        history["cortes"][0]["corte_id"], "20240602_2100",
        "{history:#}"
    );
    assert_eq!(
        files(&copy),
        before,
        "nothing is created beside the journal"
    );
}

#[test]
fn a_journal_that_lost_its_last_rows_is_told_by_the_archive_and_nothing_is_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &[]);
    let first = site_package("20240602_2100", &[]);
    let last = site_package("20240602_2200", &[]);
    drop_file(&server.entrada(), "20240602_2100_PREP_SITIO.zip", &first);
    server.wait_corte("20240602_2100");
    drop_file(&server.entrada(), "20240602_2200_PREP_SITIO.zip", &last);
    server.wait_corte("20240602_2200");
    // A crash, then an operator "cleaning up": the rows written since the journal's last
    // checkpoint were only in its -wal file.
    server.kill();
    for file in ["bitacora.sqlite-wal", "bitacora.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    server.launch();
    server.wait_ready();

    // Said: on /status, /metrics, in the journal and the log, naming the packages and what
    // to do.
    let status = server.status();
    assert_eq!(status["counts"]["unjournaled"], 2, "{status:#}");
    let metrics = curl(&server.admin("/metrics"), &[]).text();
    assert!(
        metrics.contains("difusor_packages{outcome=\"unjournaled\"} 2"),
        "{metrics}"
    );
    let warnings = warnings_of(&server, "unjournaled");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert_eq!(detail["package_count"], 2, "{detail:#}");
    for bytes in [&first, &last] {
        let sha = sha256_hex(bytes);
        assert!(
            detail["packages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().contains(&sha)),
            "{sha} named: {detail:#}"
        );
    }
    let text = detail["warning"].as_str().unwrap();
    assert!(
        text.contains("not in the journal") && text.contains("restore"),
        "{text}"
    );
    assert!(
        server
            .log()
            .contains("verified package(s) in the archive are not in the journal"),
        "{}",
        server.log()
    );
    // Nothing guessed: no corte the journal does not know is published, nothing removed.
    assert!(status["live"]["corte"].is_null(), "{status:#}");
    assert!(events(&server, "published").is_empty());
    for bytes in [&first, &last] {
        let sha = sha256_hex(bytes);
        assert!(data.join("archivo").join(&sha[..2]).join(&sha).is_file());
    }

    // Delivered again, the latest corte is taken as any package and goes live.
    drop_file(&server.entrada(), "20240602_2200_PREP_SITIO.zip", &last);
    server.wait_corte("20240602_2200");
    assert_eq!(server.status()["counts"]["unjournaled"], 1);
    let metrics = curl(&server.admin("/metrics"), &[]).text();
    assert!(
        metrics.contains("difusor_packages{outcome=\"unjournaled\"} 1"),
        "{metrics}"
    );
    // Said once: the next start knows them.
    server.stop();
    server.launch();
    server.wait_ready();
    let warnings = warnings_of(&server, "unjournaled").len();
    assert_eq!(warnings, 1);
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2200"));
}

#[test]
fn a_journal_copied_while_the_live_corte_arrived_does_not_go_back_to_an_older_one_silently() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &[]);
    drop_file(
        &server.entrada(),
        "20240602_2100_PREP_SITIO.zip",
        &site_package("20240602_2100", &[]),
    );
    server.wait_corte("20240602_2100");
    let name = "20240602_2200_PREP_SITIO.zip";
    let last = site_package("20240602_2200", &[]);
    drop_file(&server.entrada(), name, &last);
    server.wait_corte("20240602_2200");
    server.stop();
    // The journal put back as a backup copied it while 20240602_2200 was arriving: its
    // arrival is there, its verification and publication are not.
    let sha = sha256_hex(&last);
    let journal = rusqlite::Connection::open(data.join("bitacora.sqlite")).unwrap();
    journal
        .execute(
            "DELETE FROM events WHERE id > (SELECT min(id) FROM events
                                           WHERE package = ?1 AND kind = 'received')",
            [&sha],
        )
        .unwrap();
    journal
        .execute("DELETE FROM publications WHERE package = ?1", [&sha])
        .unwrap();
    journal
        .execute(
            "UPDATE packages SET outcome = 'received' WHERE sha256 = ?1",
            [&sha],
        )
        .unwrap();
    drop(journal);
    server.launch();
    server.wait_ready();

    // The journal knows 20240602_2100 as live, and the archive a verified package it knows
    // only as received: said, with the package named, not published on a guess.
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    let status = server.status();
    assert_eq!(status["counts"]["unjournaled"], 1, "{status:#}");
    let warnings = warnings_of(&server, "unjournaled");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert_eq!(detail["live"], "20240602_2100", "{detail:#}");
    assert_eq!(
        detail["packages"][0],
        format!("{name} ({sha})"),
        "{detail:#}"
    );
    assert!(events(&server, "published").len() == 1);

    // Delivered again, it goes live.
    drop_file(&server.entrada(), name, &last);
    server.wait_corte("20240602_2200");
    assert_eq!(server.status()["counts"]["unjournaled"], 0);
}

/// The outcome the journal in the data folder `data` gives the package `sha`.
fn outcome_of(data: &Path, sha: &str) -> String {
    rusqlite::Connection::open(data.join("bitacora.sqlite"))
        .unwrap()
        .query_row(
            "SELECT outcome FROM packages WHERE sha256 = ?1",
            [sha],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn an_unjournaled_package_is_put_live_again_by_a_rollback_naming_it_never_on_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &[]);
    let name = "20240602_2200_PREP_SITIO.zip";
    let first = site_package("20240602_2100", &[]);
    // The institute's 22:00 corte, then the same corte corrected, under the same name.
    let wrong = site_package("20240602_2200", &[("nota.txt", b"primera entrega")]);
    let last = site_package("20240602_2200", &[("nota.txt", b"entrega corregida")]);
    // Each with its `.sha256` file, which the archive keeps beside it with its name.
    let deliver = |name: &str, bytes: &[u8], published: i64| {
        let sum = corpus::sum_line(bytes, name);
        drop_file(&server.entrada(), &format!("{name}.sha256"), sum.as_bytes());
        drop_file(&server.entrada(), name, bytes);
        server.wait_published(published);
    };
    deliver("20240602_2100_PREP_SITIO.zip", &first, 1);
    deliver(name, &wrong, 2);
    deliver(name, &last, 3);
    assert_eq!(
        curl(&server.url("/nota.txt"), &[]).text(),
        "entrega corregida"
    );
    let paths = ["/", "/json/main.json", "/nota.txt"];
    let served: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| curl(&server.url(p), &[]).body)
        .collect();
    server.kill();
    for file in ["bitacora.sqlite-wal", "bitacora.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    server.launch();
    server.wait_ready();
    assert_eq!(server.status()["counts"]["unjournaled"], 3);
    let warnings = warnings_of(&server, "unjournaled");
    let text = warnings[0]["detail"]["warning"].as_str().unwrap();
    assert!(text.contains("difusor rollback"), "{text}");

    // The corte id names two packages: refused naming both, nothing published on a guess.
    let out = server.run(&["rollback", "20240602_2200"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for bytes in [&wrong, &last] {
        assert!(stdout.contains(&sha256_hex(bytes)), "{stdout}");
    }
    assert!(server.live_corte().is_none());

    // Named by its SHA-256, the corrected one is verified again and goes live, byte for byte.
    let sha = sha256_hex(&last);
    let out = server.run(&["rollback", &sha[..12]]);
    assert_success(&out);
    server.wait_corte("20240602_2200");
    let now: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| curl(&server.url(p), &[]).body)
        .collect();
    assert_eq!(now, served);
    let status = server.status();
    assert_eq!(status["counts"]["unjournaled"], 2, "{status:#}");
    assert_eq!(outcome_of(&data, &sha), "published");

    // By its corte id when only one package has it, here through the admin listener.
    let r = curl(
        &server.admin("/rollback?corte=20240602_2100"),
        &["-X", "POST"],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    server.wait_corte("20240602_2100");
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).text(),
        r#"{"corte":"20240602_2100"}"#
    );
    assert_eq!(server.status()["counts"]["unjournaled"], 1);
    assert_eq!(outcome_of(&data, &sha256_hex(&first)), "published");

    // The journal keeps it: the next start serves the same corte, warns of nothing new.
    server.restart();
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    assert_eq!(warnings_of(&server, "unjournaled").len(), 1);
}

#[test]
fn a_damaged_journal_stops_the_start_saying_to_restore_it_from_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut first = stopped_with_a_corte(&data);
    let journal = data.join("bitacora.sqlite");
    let whole = std::fs::read(&journal).unwrap();
    assert!(whole.len() > 4096, "{} bytes", whole.len());

    for (damage, bytes) in [
        (
            "overwritten",
            b"these are not the journal's bytes\n".repeat(200),
        ),
        ("cut short", whole[..4096].to_vec()),
    ] {
        refused_as_damaged(&data, damage, &bytes);
    }

    // Restored, the corte is served again.
    std::fs::write(&journal, &whole).unwrap();
    first.launch();
    first.wait_ready();
    assert_eq!(first.live_corte().as_deref(), Some("20240602_2100"));
}

#[test]
fn a_journal_with_a_damaged_page_stops_the_start_naming_it_instead_of_serving_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = stopped_with_three_cortes(&data);
    let journal = data.join("bitacora.sqlite");
    let whole = std::fs::read(&journal).unwrap();

    for (damage, bytes) in [
        // Without a check at start: served, every package's outcome unreadable.
        (
            "a page of packages",
            with_root_page_overwritten(&journal, "packages"),
        ),
        // Without a check at start: served, until a write reaches that page.
        (
            "a page of an index",
            with_root_page_overwritten(&journal, "sqlite_autoindex"),
        ),
        (
            "a page of events",
            with_root_page_overwritten(&journal, "events"),
        ),
        ("cut short", whole[..whole.len() / 2].to_vec()),
    ] {
        refused_as_damaged(&data, damage, &bytes);
    }

    // Restored, the last corte is served again.
    std::fs::write(&journal, &whole).unwrap();
    server.launch();
    server.wait_ready();
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2120"));
    assert_eq!(server.status()["counts"]["unjournaled"], 0);
}

/// Writes `bytes` as the journal of the data folder `data` and starts a server on it: the
/// start stops with exit status 2, naming the journal, saying it is `damage`d and how to
/// restore it, before serving, and leaves the file as it was.
fn refused_as_damaged(data: &Path, damage: &str, bytes: &[u8]) {
    let journal = data.join("bitacora.sqlite");
    std::fs::write(&journal, bytes).unwrap();
    let out = serve_until_it_stops(difusor(), data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{damage}: {stderr}");
    assert!(
        stderr.contains(&format!("cannot open the journal {}", journal.display()))
            && stderr.contains("it is damaged")
            && stderr.contains("restore the journal from a backup")
            && stderr.contains("the archive (archivo/) is intact")
            && !stderr.contains("serving the public site"),
        "{damage}: {stderr}"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        bytes,
        "{damage}: left as it was"
    );
}

/// The bytes of the journal `journal` with 256 bytes of the root page of the first table or
/// index whose name begins with `name` (found through `sqlite_master`) overwritten past its
/// header: a bad sector, a stray write.
fn with_root_page_overwritten(journal: &Path, name: &str) -> Vec<u8> {
    let (page_size, root) = {
        let db = rusqlite::Connection::open(journal).unwrap();
        let page_size: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let root: i64 = db
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE rootpage > 0 AND name LIKE ?1 || '%' \
                 ORDER BY name LIMIT 1",
                [name],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{name} in sqlite_master: {e}"));
        (page_size as usize, root as usize)
    };
    let mut bytes = std::fs::read(journal).unwrap();
    let at = (root - 1) * page_size + 8;
    bytes[at..at + 256].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef].repeat(64));
    bytes
}

#[test]
fn a_journal_with_a_damaged_page_stops_history_and_memoria_naming_it_instead_of_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let from = jiff::Timestamp::now();
    let _server = stopped_with_three_cortes(&data);
    let period = [
        "--from".to_owned(),
        from.to_string(),
        "--to".to_owned(),
        (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1)).to_string(),
    ];
    let journal = data.join("bitacora.sqlite");
    let whole = std::fs::read(&journal).unwrap();
    let history = || {
        difusor()
            .args(["history", "--json", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };

    // Without a check at open: with a page of packages, both read the journal as if whole
    // (neither reads that table); with a page of events or publications, both stop with no
    // more than "database disk image is malformed".
    for table in ["packages", "events", "publications"] {
        let bytes = with_root_page_overwritten(&journal, table);
        std::fs::write(&journal, &bytes).unwrap();
        let out = dir.path().join(format!("memoria-{table}"));
        let memoria = difusor()
            .arg("memoria")
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(&period)
            .output()
            .unwrap();
        for (command, run) in [("history", history()), ("memoria", memoria)] {
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert_eq!(
                run.status.code(),
                Some(2),
                "{command}, a page of {table}: {stderr}"
            );
            assert!(
                stderr.contains(&format!("cannot read the journal {}", journal.display()))
                    && stderr.contains("SQLite's check of it finds pages")
                    && stderr.contains("it is damaged")
                    && stderr.contains("restore the journal from a backup"),
                "{command}, a page of {table}: {stderr}"
            );
        }
        assert!(!out.exists(), "a page of {table}: no report");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".memoria-"))
            .collect();
        assert!(left.is_empty(), "a page of {table}: {left:?} left behind");
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "a page of {table}: left as it was"
        );
        std::fs::write(&journal, &whole).unwrap();
    }

    // Restored, it is read whole.
    let restored = history();
    assert_success(&restored);
    let restored: serde_json::Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(
        restored["cortes"].as_array().map(Vec::len),
        Some(3),
        "{restored:#}"
    );
}

/// A server on the data folder `data` that published cortes 2100, 2110 and 2120, stopped.
fn stopped_with_three_cortes(data: &Path) -> Server {
    let mut server = Server::start(data, &[]);
    for corte in ["20240602_2100", "20240602_2110", "20240602_2120"] {
        drop_file(
            &server.entrada(),
            &format!("{corte}_PREP_SITIO.zip"),
            &site_package(corte, &[]),
        );
        server.wait_corte(corte);
    }
    server.stop();
    server
}
