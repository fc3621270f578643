//! The data folder under stress: a full disk, a journal another process holds locked or moves
//! away, its -wal file removed, a read-only view of the folder. The live corte is served
//! throughout, nothing is published without its journal entries, `/status` says plainly that
//! packages are not being taken and why (the journal may be what fails), the packages stay
//! where they came from, and they are taken without an operator's action once the fault is
//! repaired; the rows of a removed -wal file are kept, and a crash then loses none.
//!
//! The disk tests mount a small tmpfs (root only: elsewhere they are skipped with a note,
//! except in CI); it is unmounted when the test ends, whether it passed or not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// A server on `data` (with `args`) serving its first corte, `20240602_2100`, taken from its
/// intake folder.
fn serving_a_first_corte(data: &Path, args: &[&str]) -> Server {
    let server = Server::start(data, args);
    drop_file(
        &server.entrada(),
        "20240602_2100_PREP_SITIO.zip",
        &site_package("20240602_2100", &[]),
    );
    server.wait_corte("20240602_2100");
    server
}

/// Something mounted on `point`, unmounted when dropped, whether the test passed or not.
pub(crate) struct Mounted {
    point: PathBuf,
}

impl Mounted {
    /// `mount <args> <point>`; `None` where this process may not mount (not root), the test
    /// then being skipped with a note, except in CI, which runs it as root.
    pub(crate) fn new(args: &[&str], point: &Path) -> Option<Mounted> {
        let out = Command::new("mount").args(args).arg(point).output();
        match out {
            Ok(o) if o.status.success() => Some(Mounted {
                point: point.to_owned(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot mount, and CI runs this test as root: {why}"
                );
                eprintln!("SKIPPED: cannot mount (this test needs root): {why}");
                None
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Lazily: detached at once even if a file in it is still open.
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

/// A tmpfs mounted on a folder of its own (`<tempdir>/d`, so that a server's log, written
/// beside its data folder, stays off it), unmounted when dropped.
struct Tmpfs {
    // Unmounted before its folder is removed.
    mounted: Mounted,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`); `None` where this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("d");
        std::fs::create_dir(&point).unwrap();
        let mounted = Mounted::new(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &point,
        )?;
        Some(Tmpfs { mounted, _dir: dir })
    }

    /// The mount point.
    fn path(&self) -> PathBuf {
        self.mounted.point.clone()
    }

    /// Changes its size: a larger one is space freed.
    fn resize(&self, size: &str) {
        run_ok(
            Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(self.path()),
        );
    }
}

/// Writes `path` until the disk is full: what is left for anything else is nothing.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // What fits of a smaller write too.
    for _ in 0..64 {
        let _ = f.write_all(&chunk[..512]);
    }
    let _ = f.sync_all();
}

/// `difusor ingest`'s answer to a package the server could not take by a fault of its own:
/// exit status 2, the outcome `failed` with `fault: ours`, said so in words.
fn assert_failed_on_our_side(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["outcome"], "failed", "{v} {stderr}");
    assert_eq!(v["fault"], "ours", "{v} {stderr}");
    assert!(
        stderr.contains("on this server's side, not of the package"),
        "{stderr}"
    );
}

/// `/status`'s `intake_failing`, waited for until it is set.
fn wait_failing(server: &Server) -> serde_json::Value {
    server.wait_status("packages said not to be taken, on /status", |s| {
        !s["intake_failing"].is_null()
    })["intake_failing"]
        .clone()
}

/// Every published package has its `received`, `archived` and `verified` events.
fn assert_evidence_of_every_publication(server: &Server) {
    let published = events(server, "published");
    assert!(!published.is_empty());
    for p in published {
        let sha = p["package"].as_str().unwrap().to_owned();
        for kind in ["received", "archived", "verified"] {
            assert!(
                events(server, kind).iter().any(|e| e["package"] == sha),
                "published {sha} has no `{kind}` event in the journal: {p}"
            );
        }
    }
}

#[test]
fn a_full_disk_is_said_on_status_the_live_corte_stays_and_the_package_is_taken_once_freed() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let data = fs.path();
    // No space kept free (`min_free_space`, larger than this disk by default): here the disk
    // itself refuses.
    let server = serving_a_first_corte(
        &data,
        &["--health-listen", "127.0.0.1:0", "--min-free-space", "0"],
    );

    // A package larger than what is left once it is in the intake folder: its archived copy
    // does not fit.
    let name = "20240602_2110_PREP_SITIO.zip";
    let big = site_package(
        "20240602_2110",
        &[("datos/ruido.bin", &corpus::noise(9 << 20))],
    );
    drop_file(&server.entrada(), name, &big);
    let failing = wait_failing(&server);
    assert_eq!(failing["name"], name, "{failing}");
    assert_eq!(failing["channel"], "watch", "{failing}");
    assert!(
        failing["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{failing}"
    );
    assert!(failing["failures"].as_u64().unwrap() >= 1, "{failing}");

    // Then nothing is left at all. The late package is larger than any partial copy of the
    // big one that a retry (the intake may take it twice at once) could still be freeing
    // while the disk is filled: its upload cannot fit whenever that copy goes.
    let filler = data.join("relleno");
    fill(&filler);
    let elsewhere = data.with_extension("pkgs");
    std::fs::create_dir(&elsewhere).unwrap();
    let late = elsewhere.join("20240602_2120_PREP_SITIO.zip");
    let late_bytes = site_package(
        "20240602_2120",
        &[("datos/ruido.bin", &corpus::noise(8 << 20))],
    );
    std::fs::write(&late, late_bytes).unwrap();
    let out = server.run(&["ingest", late.to_str().unwrap()]);
    assert_failed_on_our_side(&out);
    let failing = server.status()["intake_failing"].clone();
    assert_eq!(failing["channel"], "cli", "{failing}");
    assert!(
        curl(&server.admin("/metrics"), &[])
            .text()
            .lines()
            .any(|l| l.starts_with("difusor_intake_consecutive_failures ") && !l.ends_with(" 0")),
        "the metric counts the failures"
    );

    // Visitors and the load balancer see the live corte as before.
    for path in ["/", "/json/main.json"] {
        let r = curl(&server.url(path), &["--max-time", "5"]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-prep-corte"), Some("20240602_2100"), "{path}");
    }
    assert_eq!(curl(&health_url(&server), &[]).status, 200);
    // Nothing was lost or set aside: the package is where it came from.
    assert_eq!(std::fs::read(server.entrada().join(name)).unwrap(), big);
    assert!(events(&server, "rejected").is_empty());

    // Space is freed: the package is taken without anyone touching it.
    std::fs::remove_file(&filler).unwrap();
    fs.resize("64m");
    server.wait_corte("20240602_2110");
    assert!(
        !server.entrada().join(name).exists(),
        "archived, so it left"
    );
    assert!(server.status()["intake_failing"].is_null());
    assert_success(&server.run(&["ingest", late.to_str().unwrap()]));
    server.wait_corte("20240602_2120");
    assert!(events(&server, "rejected").is_empty());
    assert_evidence_of_every_publication(&server);
}

#[test]
fn an_upload_the_server_cannot_write_is_its_own_fault_journaled_and_shown_on_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = Server::start(&data, &[]);
    let pkg = dir.path().join("20240602_2100_PREP_SITIO.zip");
    std::fs::write(&pkg, site_package("20240602_2100", &[])).unwrap();
    // Uploads are written in the data folder's `tmp/`; a file standing there instead breaks
    // it, as a damaged disk would.
    let tmp = data.join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"").unwrap();

    let out = server.run(&["ingest", pkg.to_str().unwrap()]);
    assert_failed_on_our_side(&out);
    let errors = wait_events(&server, "intake-error", 1);
    assert_eq!(errors[0]["detail"]["channel"], "cli", "{errors:?}");
    assert_eq!(errors[0]["detail"]["fault"], "ours", "{errors:?}");
    assert_eq!(
        errors[0]["detail"]["name"], "20240602_2100_PREP_SITIO.zip",
        "{errors:?}"
    );
    assert!(events(&server, "rejected").is_empty());
    let failing = server.status()["intake_failing"].clone();
    assert_eq!(failing["channel"], "cli", "{failing}");

    // Repaired: sent again, taken.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    assert_success(&server.run(&["ingest", pkg.to_str().unwrap()]));
    server.wait_corte("20240602_2100");
    assert!(server.status()["intake_failing"].is_null());
}

#[test]
fn a_locked_journal_holds_no_visitor_publishes_nothing_unjournaled_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = serving_a_first_corte(&data, &[]);

    // Someone opens the journal and leaves a write transaction open.
    let holder = rusqlite::Connection::open(data.join("bitacora.sqlite")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    let name = "20240602_2110_PREP_SITIO.zip";
    drop_file(&server.entrada(), name, &site_package("20240602_2110", &[]));

    // Visitors and the admin listener answer at once meanwhile.
    while locked_at.elapsed() < Duration::from_secs(3) {
        let started = Instant::now();
        let r = curl(&server.url("/json/main.json"), &["--max-time", "2"]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-prep-corte"), Some("20240602_2100"));
        assert!(started.elapsed() < Duration::from_secs(1));
        server.status();
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once the journal's wait (10 s) is over for the package's arrival, the package is said
    // not to be taken, on /status (the journal cannot say it), and it stays in the intake
    // folder.
    let failing = loop {
        let s = server.status();
        if !s["intake_failing"].is_null() {
            break s["intake_failing"].clone();
        }
        assert!(
            locked_at.elapsed() < Duration::from_secs(20),
            "a package not taken is not said on /status: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(failing["name"], name, "{failing}");
    assert!(
        failing["error"].as_str().unwrap().contains("locked"),
        "{failing}"
    );
    assert!(server.entrada().join(name).exists());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));

    // Held a little longer, then released: a publisher that went on with a package after
    // its arrival could not be journaled would write the rest of its entries now, and
    // publish it without the first.
    std::thread::sleep(Duration::from_secs(13).saturating_sub(locked_at.elapsed()));
    drop(holder);
    // The package is taken, with every journal entry, without anyone's action.
    server.wait_corte("20240602_2110");
    assert!(server.status()["intake_failing"].is_null());
    assert!(!server.entrada().join(name).exists());
    assert!(events(&server, "rejected").is_empty());
    assert_evidence_of_every_publication(&server);
}

#[test]
fn a_package_whose_failures_the_journal_could_not_record_is_taken_again_never_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = serving_a_first_corte(&data, &[]);

    // The journal takes some writes and not others, as when it is locked at times or its
    // disk fills and frees: here (through triggers put in it from outside) it takes the
    // start of a package's processing but neither its publication nor the failure that
    // follows, so the package stays `processing` there though nothing interrupted it.
    let journal = rusqlite::Connection::open(data.join("bitacora.sqlite")).unwrap();
    journal.busy_timeout(Duration::from_secs(10)).unwrap();
    journal
        .execute_batch(
            "CREATE TRIGGER no_publication BEFORE INSERT ON publications
               BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;
             CREATE TRIGGER no_failure BEFORE UPDATE OF outcome ON packages
               WHEN NEW.outcome = 'failed'
               BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;",
        )
        .unwrap();
    let name = "20240602_2110_PREP_SITIO.zip";
    drop_file(&server.entrada(), name, &site_package("20240602_2110", &[]));
    // Tried again and again (past the two interrupted attempts after which a package that
    // kills the server is set aside), and never decided on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&server, "intake-error").len() < 3 && events(&server, "set-aside").is_empty() {
        assert!(Instant::now() < deadline, "three failures of ours expected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let set_aside = events(&server, "set-aside");
    assert!(set_aside.is_empty(), "{set_aside:?}");
    assert!(server.status()["intake_failing"]["failures"].as_u64() >= Some(3));
    assert!(events(&server, "rejected").is_empty());
    assert!(server.entrada().join(name).exists(), "it stays to be taken");

    // Repaired: taken.
    journal
        .execute_batch("DROP TRIGGER no_publication; DROP TRIGGER no_failure;")
        .unwrap();
    server.wait_corte("20240602_2110");
    assert!(events(&server, "set-aside").is_empty());
    assert!(events(&server, "rejected").is_empty());
    assert!(server.status()["intake_failing"].is_null());
}

#[test]
fn a_command_given_a_read_only_view_of_the_folder_reaches_the_server_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = Server::start(&data, &[]);
    // The same folder where this command cannot write, as on a disk turned read-only.
    let view = dir.path().join("vista");
    std::fs::create_dir(&view).unwrap();
    let Some(_bound) = Mounted::new(&["--bind", data.to_str().unwrap()], &view) else {
        return;
    };
    run_ok(
        Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&view),
    );
    let pkg = dir.path().join("20240602_2100_PREP_SITIO.zip");
    std::fs::write(&pkg, site_package("20240602_2100", &[])).unwrap();
    let admin = format!("127.0.0.1:{}", server.admin_port);
    let command = |sub: &[&str]| {
        difusor()
            .args(sub)
            .args([
                "--data-dir",
                view.to_str().unwrap(),
                "--admin-listen",
                &admin,
                "--corte-window-margin",
                "",
            ])
            .output()
            .unwrap()
    };

    // The folder is held, so the server is asked, and answers.
    let out = command(&["ingest", pkg.to_str().unwrap()]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published", "{v}");
    server.wait_corte("20240602_2100");
    assert_success(&command(&["notice", "on", "--text", "Suspendido"]));
    assert!(server.status()["gate"]["notice"] == "Suspendido");

    // Held by no server, nothing can be done there, and the command says why.
    drop(server);
    let out = command(&["notice", "off"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot open the lock file") && stderr.contains("Read-only file system"),
        "{stderr}"
    );
}

/// The access log on a disk that fills up: the lines of the requests served meanwhile are
/// held, then written whole, once each and in order, when space is freed. The log says so
/// when it begins and when it ends, not at every try.
#[test]
fn access_log_lines_a_full_disk_refuses_are_held_and_written_once_it_is_freed() {
    let Some(fs) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let logs = fs.path();
    let server = serving_a_first_corte(
        &dir.path().join("d"),
        &["--log-dir", logs.to_str().unwrap()],
    );
    let filler = logs.join("relleno");
    fill(&filler);
    let n = 50;
    for i in 0..n {
        let r = curl(&server.url(&format!("/?lleno={i}")), &[]);
        assert_eq!(r.status, 200, "visitors are served while the log waits");
    }
    // A second of tries, twenty a second (the first lines may fit in what is left of the
    // file's last page): said once.
    std::thread::sleep(Duration::from_secs(1));
    let log = server.log();
    assert_eq!(
        log.matches("cannot write the access log").count(),
        1,
        "{log}"
    );
    let access = logs.join("access.log");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let written = loop {
        let written = std::fs::read_to_string(&access).unwrap();
        if written.contains(&format!("lleno={} ", n - 1)) {
            break written;
        }
        assert!(Instant::now() < deadline, "{written}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = written.lines().filter(|l| l.contains("lleno=")).collect();
    let expected: Vec<String> = (0..n)
        .map(|i| format!("GET /?lleno={i} HTTP/1.1"))
        .collect();
    assert_eq!(lines.len(), n, "{written}");
    for (line, request) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with("127.0.0.1 - - [") && line.contains(request.as_str()),
            "{line}"
        );
    }
    assert!(
        server
            .log()
            .contains("the access log is written again, with the lines held meanwhile"),
        "{}",
        server.log()
    );
    assert!(warned(&server, "cannot write the access log"), "journaled");
}

/// A package dropped into the intake folder, or given to `difusor ingest`, whose copy into
/// the archive would take the space kept free (`min_free_space`, here larger than any disk)
/// is not taken, as this server's fault: journaled as an `intake-error` that names the
/// setting, said on `/status`, nothing published, the live corte and the file left as they
/// are; once the reserve is lowered it is taken without anyone touching it.
#[test]
fn a_package_whose_copy_would_take_the_space_kept_free_is_not_taken_and_the_live_corte_stays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = serving_a_first_corte(&data, &[]);
    server
        .extra
        .extend(["--min-free-space".into(), "1000TiB".into()]);
    server.restart();

    let name = "20240602_2110_PREP_SITIO.zip";
    let bytes = site_package("20240602_2110", &[]);
    drop_file(&server.entrada(), name, &bytes);
    let failing = wait_failing(&server);
    assert_eq!(failing["name"], name, "{failing}");
    assert_eq!(failing["channel"], "watch", "{failing}");
    let errors = wait_events(&server, "intake-error", 1);
    let detail = &errors[0]["detail"];
    assert_eq!(detail["fault"], "ours", "{detail}");
    assert!(
        detail["error"].as_str().unwrap().contains("min_free_space"),
        "{detail}"
    );
    let late = dir.path().join("20240602_2120_PREP_SITIO.zip");
    std::fs::write(&late, site_package("20240602_2120", &[])).unwrap();
    assert_failed_on_our_side(&server.run(&["ingest", late.to_str().unwrap()]));
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    assert_eq!(std::fs::read(server.entrada().join(name)).unwrap(), bytes);
    assert!(events(&server, "rejected").is_empty());
    assert_eq!(events(&server, "received").len(), 1);
    assert_eq!(server.status()["free_space"]["reserve_reached"], true);

    // The reserve lowered (space freed, in effect): taken as it lies.
    server.extra.truncate(server.extra.len() - 2);
    server.restart();
    server.wait_corte("20240602_2110");
    assert!(server.status()["intake_failing"].is_null());
    assert_eq!(server.status()["free_space"]["reserve_reached"], false);
    assert_evidence_of_every_publication(&server);
}

#[test]
fn a_journal_moved_or_replaced_while_serving_stops_intake_until_it_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = serving_a_first_corte(&data, &[]);
    let journal = data.join("bitacora.sqlite");
    let aside = data.join("bitacora.sqlite.aparte");
    let failing_with = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = server.status();
            let error = s["intake_failing"]["error"].as_str().unwrap_or_default();
            if error.contains(what) {
                return s["intake_failing"].clone();
            }
            assert!(
                s["live"]["corte"] == "20240602_2100",
                "published while the journal is not where a start reads it: {s:#}"
            );
            assert!(Instant::now() < deadline, "{what} not said: {s:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Moved away (as `rm` would leave it, or a `mv` to make room for a backup).
    std::fs::rename(&journal, &aside).unwrap();
    let name = "20240602_2110_PREP_SITIO.zip";
    drop_file(&server.entrada(), name, &site_package("20240602_2110", &[]));
    let failing = failing_with("is not the file this server opened");
    assert!(
        failing["error"]
            .as_str()
            .unwrap()
            .contains("no longer there"),
        "{failing}"
    );
    assert_eq!(failing["name"], name, "{failing}");
    // A copy put in its place (a backup restored over it) is not the file either.
    std::fs::copy(&aside, &journal).unwrap();
    failing_with("another file is in its place");
    assert!(server.entrada().join(name).exists());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));

    // Put back: taken without a restart, with its journal entries where a start reads them.
    std::fs::rename(&aside, &journal).unwrap();
    server.wait_corte("20240602_2110");
    assert!(server.status()["intake_failing"].is_null());
    assert!(!server.entrada().join(name).exists());
    assert!(events(&server, "rejected").is_empty());
    assert_evidence_of_every_publication(&server);
}

#[test]
fn a_journal_wal_file_removed_while_serving_loses_nothing_when_the_server_then_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = serving_a_first_corte(&data, &[]);
    let wal = data.join("bitacora.sqlite-wal");
    assert!(wal.exists(), "the journal runs in WAL mode");

    // Removed while it runs ("cleaning up", a backup script), then a package taken.
    std::fs::remove_file(&wal).unwrap();
    drop_file(
        &server.entrada(),
        "20240602_2110_PREP_SITIO.zip",
        &site_package("20240602_2110", &[]),
    );
    server.wait_corte("20240602_2110");
    let remade = wal.exists();

    // A crash (kill -9, a power cut): the start knows both packages and serves the last.
    server.restart();
    assert!(
        warnings_of(&server, "unjournaled").is_empty(),
        "rows lost with the removed -wal file: {}",
        server.log()
    );
    let status = server.status();
    assert_eq!(status["live"]["corte"], "20240602_2110", "{status:#}");
    assert_eq!(status["counts"]["published"], 2, "{status:#}");
    assert_eq!(status["counts"]["unjournaled"], 0, "{status:#}");
    assert!(remade, "a new -wal file is made at its path");
    let said = warnings_of(&server, "journal-wal");
    assert_eq!(said.len(), 1, "said once: {said:#?}");
    let warning = said[0]["detail"]["warning"].as_str().unwrap();
    assert!(
        warning.contains("bitacora.sqlite-wal") && warning.contains("nothing is lost"),
        "{warning}"
    );
}
