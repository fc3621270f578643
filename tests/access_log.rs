//! The access log on a real server, over the things a night does to it: local midnight
//! (libfaketime moving the server's clock, and moving it back), a restart on the next day,
//! and the file moved away or removed under the running server (a system `logrotate`, an operator freeing space). Every
//! request is in exactly one of the logs, each day's under its own name, and `memoria` reads
//! them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::support::*;

/// The ids of the requests (`?n=<id>`) each line of `text` logs, with how many times.
fn ids(text: &[u8]) -> BTreeMap<u32, usize> {
    let mut seen = BTreeMap::new();
    for line in String::from_utf8_lossy(text).lines() {
        let id = line
            .split_once("?n=")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a line of no request of the test: {line}"));
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// The lines of the log at `path`, gzip read through, if it is there.
fn read_log(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    Some(if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes)
    } else {
        bytes
    })
}

/// The ids logged in `path`, by how many times.
fn ids_in(path: &Path) -> BTreeMap<u32, usize> {
    ids(&read_log(path).unwrap_or_else(|| panic!("no {}", path.display())))
}

/// Each of `range` once.
fn once(range: std::ops::Range<u32>) -> BTreeMap<u32, usize> {
    range.map(|n| (n, 1)).collect()
}

/// Asks for `/json/main.json?n=<id>` for each id of `range`.
fn requests(server: &Server, range: std::ops::Range<u32>) {
    for n in range {
        let r = curl(&server.url(&format!("/json/main.json?n={n}")), &[]);
        assert_ne!(r.status, 0, "request {n} answered");
    }
}

/// Waits (at most 20 s) until `path` exists and logs `want`.
fn wait_logged(path: &Path, want: &BTreeMap<u32, usize>, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = read_log(path).map(|b| ids(&b));
        if got.as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} logs {got:?}, not {want:?}; log: {}",
            path.display(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server's wall clock, moved by libfaketime through the file it reads at every call.
struct ServerClock {
    file: PathBuf,
    /// How far ahead of this machine's clock the server's is.
    offset: SignedDuration,
}

impl ServerClock {
    /// Sets the server's clock to `at`, to the second.
    fn set(&mut self, at: Timestamp) {
        let secs = at.duration_since(Timestamp::now()).as_secs_f64().round() as i64;
        self.offset = SignedDuration::from_secs(secs);
        std::fs::write(&self.file, format!("{secs:+}")).unwrap();
    }

    /// The server's time now.
    fn now(&self) -> Timestamp {
        Timestamp::now().checked_add(self.offset).unwrap()
    }

    /// Sleeps until the server's time is past `at`.
    fn wait_past(&self, at: Timestamp) {
        while self.now() <= at {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_access_log_rotates_at_midnight_and_a_clock_set_back_never_overwrites_a_rotated_day() {
    let Some(lib) = libfaketime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A night of its own: 2 June 2030 in the server's `timezone`, from noon.
    let tz = TimeZone::get("America/Mexico_City").unwrap();
    let day: jiff::civil::Date = "2030-06-02".parse().unwrap();
    let next = day.tomorrow().unwrap();
    let midnight = next
        .at(0, 0, 0, 0)
        .to_zoned_datetime(tz.clone())
        .unwrap()
        .timestamp();
    let mut clock = ServerClock {
        file: dir.path().join("offset"),
        offset: SignedDuration::ZERO,
    };
    clock.set(
        day.at(12, 0, 0, 0)
            .to_zoned_datetime(tz)
            .unwrap()
            .timestamp(),
    );
    let data = dir.path().join("d");
    let mut server = Server::launch_with_env(
        &data,
        &[],
        &[
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", clock.file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("NO_FAKE_STAT", "1"),
        ],
    );
    server.wait_ready();
    let logs = data.join("bitacoras");
    let current = logs.join("access.log");
    let secs = |s: i64| midnight.checked_add(SignedDuration::from_secs(s)).unwrap();
    let name = |d: jiff::civil::Date, part: &str| logs.join(format!("access-{d}{part}.log.gz"));

    // The evening's requests, then midnight: the day's log is closed and gzipped.
    clock.set(secs(-3));
    requests(&server, 0..5);
    wait_logged(&current, &once(0..5), &server);
    clock.wait_past(secs(1));
    requests(&server, 5..10);
    wait_logged(&current, &once(5..10), &server);
    wait_logged(&name(day, ""), &once(0..5), &server);

    // The clock set back to the evening (an operator correcting it): the night so far is
    // closed under the day it was written in, and the evening goes on in a fresh file.
    clock.set(secs(-10));
    wait_logged(&name(next, ""), &once(5..10), &server);
    requests(&server, 10..15);
    wait_logged(&current, &once(10..15), &server);

    // Midnight again: that evening's log is a second log of the same day, beside the first.
    clock.set(secs(-2));
    clock.wait_past(secs(1));
    requests(&server, 15..20);
    wait_logged(&current, &once(15..20), &server);
    wait_logged(&name(day, ".2"), &once(10..15), &server);
    wait_logged(&name(day, ""), &once(0..5), &server);

    // Stopped, and started again the next noon: the log it left is rotated at once, as
    // the second log of its day. (The kernel stamps files with this machine's clock, not the
    // server's: the file is given the time its last line was written at, as a machine whose
    // clock said so would have stamped it, and the server reads it as it is, `NO_FAKE_STAT`.)
    server.stop();
    std::fs::File::options()
        .write(true)
        .open(&current)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs(1).as_second() as u64))
        .unwrap();
    clock.set(secs(36 * 3600));
    server.launch();
    server.wait_ready();
    wait_logged(&name(next, ".2"), &once(15..20), &server);
    server.stop();

    // Every request once, over the four files and nothing else.
    let mut all = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
        for (id, n) in ids_in(&path) {
            *all.entry(id).or_insert(0) += n;
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            format!("access-{day}.2.log.gz"),
            format!("access-{day}.log.gz"),
            format!("access-{next}.2.log.gz"),
            format!("access-{next}.log.gz"),
            "access.log".to_owned()
        ]
    );
    assert_eq!(all, once(0..20));

    // memoria reads the four: every request is a hit of the period.
    let out = dir.path().join("memoria");
    let from = day.yesterday().unwrap().to_string();
    let to = next.tomorrow().unwrap().to_string();
    let ran = difusor()
        .arg("memoria")
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--from", &from, "--to", &to])
        .output()
        .unwrap();
    assert_success(&ran);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("memoria.json")).unwrap()).unwrap();
    assert_eq!(report["totals"]["hits"], 20, "{}", report["totals"]);
    // …and hands the institute each of them.
    let mut delivered: Vec<String> = std::fs::read_dir(out.join("bitacoras"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [
            format!("access-{day}.2.log.gz"),
            format!("access-{day}.log.gz"),
            format!("access-{next}.2.log.gz"),
            format!("access-{next}.log.gz"),
            "access.log.gz".to_owned()
        ]
    );
}

/// The journal's warnings that say `text`.
fn warnings_saying(server: &Server, text: &str) -> Vec<String> {
    events(server, "warning")
        .iter()
        .filter_map(|e| e["detail"]["warning"].as_str())
        .filter(|w| w.contains(text))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_access_log_moved_away_or_removed_while_serving_is_started_again_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = Server::start(&data, &[]);
    let logs = data.join("bitacoras");
    let current = logs.join("access.log");
    requests(&server, 0..5);
    wait_logged(&current, &once(0..5), &server);

    // Moved away and a new file made in its place, as a system logrotate does (`create`):
    // the lines that follow go to the new access.log, and the journal says where the
    // earlier ones are.
    let moved = logs.join("access.log.1");
    std::fs::rename(&current, &moved).unwrap();
    std::fs::write(&current, b"").unwrap();
    requests(&server, 5..10);
    wait_logged(&current, &once(5..10), &server);
    assert_eq!(ids_in(&moved), once(0..5));
    let said = warnings_saying(&server, "moved");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("access.log.1"), "{said:?}");

    // Removed: the lines that follow are in a new access.log, not in a file nobody can read.
    std::fs::remove_file(&current).unwrap();
    requests(&server, 10..15);
    wait_logged(&current, &once(10..15), &server);
    let said = warnings_saying(&server, "removed");
    assert_eq!(said.len(), 1, "{said:?}");

    assert!(
        server
            .log()
            .contains("while the access log was being written"),
        "logged as well: {}",
        server.log()
    );
}

#[test]
fn a_start_finishes_the_rotations_a_stop_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let logs = data.join("bitacoras");
    std::fs::create_dir_all(&logs).unwrap();
    let lines = |range: std::ops::Range<u32>| -> Vec<u8> {
        range
            .map(|n| {
                format!("203.0.113.7 - - [01/Jun/2030:12:00:00 -0600] \"GET /json/main.json?n={n} HTTP/1.1\" 200 10 \"-\" \"curl\"\n")
            })
            .collect::<String>()
            .into_bytes()
    };
    let gzip = |bytes: &[u8]| -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, bytes).unwrap();
        enc.finish().unwrap()
    };
    // Stopped before its gzip was made: left plain.
    std::fs::write(logs.join("access-2030-05-30.log"), lines(0..5)).unwrap();
    // Stopped after its gzip was made durable, before the plain file was removed.
    std::fs::write(logs.join("access-2030-05-31.log"), lines(5..10)).unwrap();
    std::fs::write(logs.join("access-2030-05-31.log.gz"), gzip(&lines(5..10))).unwrap();
    // A gzip that does not hold what the plain file holds: neither is removed.
    std::fs::write(logs.join("access-2030-06-01.2.log"), lines(10..15)).unwrap();
    std::fs::write(
        logs.join("access-2030-06-01.2.log.gz"),
        gzip(&lines(10..12)),
    )
    .unwrap();
    // A gzip cut short by the stop, under its temporary name.
    std::fs::write(logs.join(".access-gz-Xy12Ab"), &gzip(&lines(0..5))[..20]).unwrap();

    let server = Server::start(&data, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while logs.join("access-2030-05-30.log").exists()
        || logs.join("access-2030-05-31.log").exists()
        || logs.join(".access-gz-Xy12Ab").exists()
    {
        assert!(
            Instant::now() < deadline,
            "left as it was: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ids_in(&logs.join("access-2030-05-30.log.gz")), once(0..5));
    assert_eq!(ids_in(&logs.join("access-2030-05-31.log.gz")), once(5..10));
    assert_eq!(ids_in(&logs.join("access-2030-06-01.2.log")), once(10..15));
    assert_eq!(
        ids_in(&logs.join("access-2030-06-01.2.log.gz")),
        once(10..12)
    );
    assert!(
        server
            .log()
            .contains("an access log and its gzip hold different lines"),
        "{}",
        server.log()
    );
}
