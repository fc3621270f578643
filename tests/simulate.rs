//! `difusor simulate` and `difusor demo` through the CLI: data packages read back with
//! `difusor inspect`, a drill into a running server's intake, and the demo site in a real
//! browser (headless Chromium over the DevTools protocol).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Runs `difusor simulate` into `out` and returns the delivered file names, sorted.
fn simulate(out: &Path, args: &[&str]) -> Vec<String> {
    run_ok(
        difusor()
            .args(["simulate", "--out"])
            .arg(out)
            .args(["--every", "0s", "--fecha", "2027-06-06"])
            .args(args),
    );
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `difusor inspect --json PATH`'s report, after checking it found every summary equal to its
/// rows (exit status 0).
fn inspect_equal(path: &Path) -> serde_json::Value {
    let out = difusor()
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_finds_every_summary_equal_to_its_rows_for_several_seeds_and_sizes() {
    for (seed, casillas, elecciones, desde) in [
        ("1", "1500", "GUB,DIP_LOC,AYUN", "3h"),
        ("77", "6000", "GUB,DIP_LOC,AYUN", "5h"),
        ("5", "4000", "PRES,DIP_FED,SEN", "8h"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let names = simulate(
            dir.path(),
            &[
                "--entidad",
                "CAMP",
                "--elecciones",
                elecciones,
                "--casillas",
                casillas,
                "--seed",
                seed,
                "--desde",
                desde,
                "--cortes",
                "2",
            ],
        );
        let data: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with("_PREP_CAMP.zip"))
            .collect();
        assert_eq!(data.len(), 2, "{names:?}");
        assert_eq!(
            names
                .iter()
                .filter(|n| n.ends_with("_PREP_SITIO_COMPLETO_CAMP.zip"))
                .count(),
            1,
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with('.')),
            "no hidden leftovers: {names:?}"
        );
        for name in &names {
            if name.ends_with(".zip") {
                let bytes = std::fs::read(dir.path().join(name)).unwrap();
                let sidecar =
                    std::fs::read_to_string(dir.path().join(format!("{name}.sha256"))).unwrap();
                assert_eq!(sidecar, corpus::sum_line(&bytes, name));
            }
        }
        for name in data {
            let report = inspect_equal(&dir.path().join(name));
            let elections = report["elections"].as_array().unwrap();
            assert_eq!(elections.len(), 3);
            for e in elections {
                assert_eq!(e["consistent"], true, "{e:#}");
                assert_eq!(e["summary"].as_array().unwrap().len(), 13);
                assert_eq!(e["anomaly_count"], 0, "{:#}", e["anomalies"]);
                assert!(
                    e["by_contabilizada"]["1"].as_u64().unwrap() > 0,
                    "{seed}: {:#}",
                    e["by_contabilizada"]
                );
            }
            // LEEME and candidacies travel beside each results file.
            let others = report["other_files"].as_array().unwrap();
            assert_eq!(
                others
                    .iter()
                    .filter(|f| f.as_str().unwrap().ends_with("LEEME.txt"))
                    .count(),
                3
            );
        }
    }
}

#[test]
fn the_data_package_has_the_layout_of_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    simulate(
        dir.path(),
        &["--casillas", "500", "--cortes", "1", "--desde", "6h"],
    );
    let ours = std::fs::read(dir.path().join("20270607_0200_PREP_CAMP.zip")).unwrap();
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    let inner = |bytes: &[u8], election: &str| -> Vec<(String, String)> {
        let mut outer = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let index = (0..outer.len())
            .find(|&i| {
                outer
                    .by_index(i)
                    .unwrap()
                    .name()
                    .unwrap()
                    .contains(election)
            })
            .unwrap();
        let mut buf = Vec::new();
        outer
            .by_index(index)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(buf)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut text = String::new();
                f.read_to_string(&mut text).unwrap();
                (f.name().unwrap().to_string(), text)
            })
            .collect()
    };
    for (ours_code, real_code) in [
        ("_GUB_", "_GOB_"),
        ("_DIP_LOC_", "_DIP_LOC_"),
        ("_AYUN_", "_AYUN_"),
    ] {
        let a = inner(&ours, ours_code);
        let b = inner(&real, real_code);
        let shape = |files: &[(String, String)]| -> Vec<String> {
            files
                .iter()
                .map(|(n, _)| {
                    n.replace("2027", "Y")
                        .replace("2021", "Y")
                        .replace("GOB", "GUB")
                })
                .collect()
        };
        assert_eq!(shape(&a), shape(&b));
        let lines = |t: &str| t.lines().map(String::from).collect::<Vec<_>>();
        let (ours_csv, real_csv) = (lines(&a[1].1), lines(&b[1].1));
        assert_eq!(ours_csv[2], real_csv[2], "summary header");
        assert_eq!(ours_csv[4], "", "blank line before the columns");
        let without_votes = |h: &str| -> Vec<String> {
            let c: Vec<&str> = h.split(',').collect();
            let s = c.iter().position(|x| *x == "TOTAL_VOTOS_SACADOS").unwrap() + 1;
            let e = c.iter().position(|x| *x == "NO_REGISTRADOS").unwrap();
            c[..s]
                .iter()
                .chain(&c[e..])
                .map(|x| x.to_string())
                .collect()
        };
        assert_eq!(without_votes(&ours_csv[5]), without_votes(&real_csv[5]));
        // Every row has as many cells as the header, keys with their apostrophe.
        let width = ours_csv[5].split(',').count();
        assert!(
            ours_csv[6..]
                .iter()
                .all(|r| r.split(',').count() == width || r.contains("CATÁLOGO"))
        );
        assert!(ours_csv[6].starts_with("'04"));
        // Candidacies: the real header.
        assert_eq!(lines(&a[2].1)[0], lines(&b[2].1)[0]);
    }
}

#[test]
fn a_drill_into_a_running_servers_intake_publishes_every_corte_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--evidence-sidecar", "required"]);
    server.wait_ready();
    simulate(
        &server.entrada(),
        &[
            "--casillas",
            "2000",
            "--cortes",
            "3",
            "--desde",
            "4h",
            "--seed",
            "3",
        ],
    );
    server.wait_corte("20270607_0030");
    server.wait_published(6);
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(main.status, 200);
    let main: serde_json::Value = serde_json::from_slice(&main.body).unwrap();
    assert_eq!(main["corte"], "07/06/2027 00:30 (UTC-6)");
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
    assert_eq!(
        curl(&server.url("/json/GUB/distrito/1.json"), &[]).status,
        200
    );
    wait_events(&server, "published", 6);
    assert!(
        events(&server, "warning").is_empty(),
        "{:#?}",
        events(&server, "warning")
    );
    assert!(events(&server, "rejected").is_empty());
}

#[test]
fn signed_packages_pass_a_server_that_requires_signatures_and_others_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    run_ok(difusor().args(["keygen", "--dir"]).arg(&keys));
    let again = difusor()
        .args(["keygen", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "keygen never overwrites a key"
    );
    let other = dir.path().join("other");
    assert!(
        difusor()
            .args(["keygen", "--dir"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let public = keys.join("difusor.pub").display().to_string();
    let mut server = Server::start(
        &dir.path().join("data"),
        &[
            "--evidence-signature",
            "required",
            "--minisign-keys",
            &public,
        ],
    );
    server.wait_ready();
    // One corte at election-night time `desde`, signed with the key in `dir`.
    let signed = |desde: &str, dir: &Path| {
        let key = dir.join("difusor.key").display().to_string();
        let args = ["--casillas", "300", "--cortes", "1", "--desde", desde];
        simulate(
            &server.entrada(),
            &[&args[..], &["--sign-key", &key]].concat(),
        );
    };
    signed("5h", &keys);
    wait_events(&server, "published", 2);
    // Signed with another key: refused.
    signed("6h", &other);
    wait_events(&server, "rejected", 2);
    assert_eq!(events(&server, "published").len(), 2);
}

/// A child process stopped with SIGINT (as Ctrl-C) when dropped.
struct Interrupt(Child);

impl Drop for Interrupt {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The DevTools protocol over one websocket: commands, and the events that mean failure.
struct DevTools {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    failures: Vec<String>,
}

impl DevTools {
    fn connect(url: &str) -> DevTools {
        let (socket, _) = tungstenite::connect(url).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        DevTools {
            socket,
            next_id: 0,
            failures: Vec::new(),
        }
    }

    /// Sends a command and returns its result, noting failure events read meanwhile.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(m) = self.read()
                && m["id"] == id
            {
                return m["result"].clone();
            }
        }
        panic!("no answer to {method}");
    }

    /// One message, if one comes within the read timeout.
    fn read(&mut self) -> Option<serde_json::Value> {
        match self.socket.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let m: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                self.note(&m);
                Some(m)
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("devtools connection lost: {e}"),
        }
    }

    fn note(&mut self, m: &serde_json::Value) {
        let p = &m["params"];
        match m["method"].as_str().unwrap_or("") {
            "Network.loadingFailed" => self.failures.push(format!("request failed: {p}")),
            "Network.responseReceived" if p["response"]["status"].as_u64().unwrap_or(0) >= 400 => {
                self.failures.push(format!(
                    "HTTP {} for {}",
                    p["response"]["status"], p["response"]["url"]
                ));
            }
            "Runtime.exceptionThrown" => self.failures.push(format!("exception: {p}")),
            "Runtime.consoleAPICalled" if p["type"] == "error" => {
                self.failures.push(format!("console error: {p}"));
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                self.failures.push(format!("log error: {p}"));
            }
            _ => {}
        }
    }

    /// The text of `#corte` on the page.
    fn corte(&mut self) -> String {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": "document.getElementById('corte') ? document.getElementById('corte').textContent : ''"}),
        );
        r["result"]["value"].as_str().unwrap_or("").to_owned()
    }
}

/// Whether `text` is a corte as the site shows it: `24/11/2026 20:15 (UTC-6)`.
fn is_corte(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 24
        && b[2] == b'/'
        && b[5] == b'/'
        && b[13] == b':'
        && text[16..].starts_with(" (UTC")
        && text[..2].bytes().all(|c| c.is_ascii_digit())
}

#[test]
fn the_demo_site_shows_each_new_corte_in_a_real_browser() {
    if !chromium_available() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let demo_log = logs.path().join("demo.log");
    let mut demo = Interrupt(
        difusor()
            .args(["demo", "--port", "0", "--every", "4s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&demo_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let address = wait_logged_address(&mut demo.0, &demo_log, &["serving the public site"]);
    let site = format!("http://{address}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    while curl(&format!("{site}json/main.json"), &[]).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the demo did not publish its first corte"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--remote-debugging-port=0")
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ws = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Chromium writes the port it bound into its profile.
            let active = std::fs::read_to_string(profile.path().join("DevToolsActivePort"));
            let debug_port = active
                .ok()
                .and_then(|a| a.lines().next().map(str::to_owned));
            let targets: serde_json::Value = debug_port
                .map(|port| curl(&format!("http://127.0.0.1:{port}/json/list"), &[]).body)
                .and_then(|body| serde_json::from_slice(&body).ok())
                .unwrap_or_default();
            let page = targets
                .as_array()
                .and_then(|t| t.iter().find(|t| t["type"] == "page").cloned());
            if let Some(url) =
                page.and_then(|p| p["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut dt = DevTools::connect(&ws);
    for domain in [
        "Runtime.enable",
        "Log.enable",
        "Network.enable",
        "Page.enable",
    ] {
        dt.call(domain, serde_json::json!({}));
    }
    dt.call("Page.navigate", serde_json::json!({"url": site}));
    let wait_for = |dt: &mut DevTools, what: &str, cond: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let shown = dt.corte();
            if cond(&shown) {
                return shown;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the page shows {shown:?}"
            );
            while dt.read().is_some() {}
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let first = wait_for(&mut dt, "the first corte", &|t| is_corte(t));
    let next = wait_for(&mut dt, "the next corte", &|t| is_corte(t) && t != first);
    assert!(
        next > first || next[11..16] < first[11..16],
        "{first} then {next}"
    );
    // The figures are on the page too.
    let shown = dt.call(
        "Runtime.evaluate",
        serde_json::json!({"expression": "document.querySelectorAll('#votos tbody tr').length + ' ' + document.getElementById('esperadas').textContent"}),
    );
    assert_eq!(shown["result"]["value"], "17 5,000", "{shown:#}");
    while dt.read().is_some() {}
    let _ = browser.kill();
    let _ = browser.wait();
    drop(demo);
    assert!(
        dt.failures.is_empty(),
        "the page had failures: {:#?}",
        dt.failures
    );
}

/// Runs `difusor simulate` with `args` (two cortes of a small election on 6 June 2027 by
/// default) and returns its output.
fn simulate_with(args: &[&str]) -> std::process::Output {
    difusor()
        .args([
            "simulate",
            "--every",
            "0s",
            "--fecha",
            "2027-06-06",
            "--casillas",
            "300",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn simulate_uploads_every_corte_over_sftp_and_refuses_unknown_hosts_and_wrong_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    ssh_keygen(&key);
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--sftp-listen",
            "127.0.0.1:0",
            "--sftp-authorized-keys",
            authorized.to_str().unwrap(),
            "--evidence-sidecar",
            "required",
        ],
    );
    let port = server.sftp_port();
    let target = format!("root@127.0.0.1:{port}");
    let known_hosts = dir.path().join("known_hosts");
    // `cortes` cortes over SFTP with the client key `key`, checking the host against `known`.
    let deliver = |key: &Path, known: &Path, accept_new: bool, cortes: &str| {
        let mut args = vec!["--sftp", &target, "--sftp-key", key.to_str().unwrap()];
        args.extend(["--sftp-known-hosts", known.to_str().unwrap()]);
        if accept_new {
            args.push("--sftp-accept-new");
        }
        args.extend(["--cortes", cortes]);
        simulate_with(&args)
    };

    // An unknown host is refused, with its fingerprint and the line to add.
    let out = deliver(&key, &known_hosts, false, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let fingerprint = ssh_fingerprint(&dir.path().join("data/sftp_host_key"));
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert!(stderr.contains(&fingerprint), "{stderr}");
    assert!(
        stderr.contains(&format!("[127.0.0.1]:{port} ssh-ed25519 AAAA")),
        "{stderr}"
    );
    assert!(stderr.contains("--sftp-accept-new"), "{stderr}");
    assert_eq!(server.live_corte(), None, "nothing was sent");

    // With --sftp-accept-new the key is learnt and both cortes go over one connection.
    assert_success(&deliver(&key, &known_hosts, true, "2"));
    let learnt = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        learnt.contains(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{learnt}"
    );
    server.wait_corte("20270606_2015");
    let verified = wait_events(&server, "verified", 4);
    assert_eq!(verified.len(), 4, "{verified:#?}");
    assert_eq!(wait_events(&server, "published", 4).len(), 4);
    assert!(events(&server, "rejected").is_empty());
    // The refused attempt is journaled too, unauthenticated.
    let sessions: Vec<_> = wait_events(&server, "sftp-session", 2)
        .into_iter()
        .filter(|s| s["detail"]["authenticated"] == true)
        .collect();
    assert_eq!(
        sessions.len(),
        1,
        "one connection for the run: {sessions:#?}"
    );
    assert_eq!(
        sessions[0]["detail"]["error"],
        serde_json::Value::Null,
        "a clean end: {sessions:#?}"
    );
    assert_eq!(sessions[0]["detail"]["file_count"], 4, "{sessions:#?}");
    assert_eq!(sessions[0]["detail"]["refusal_count"], 0, "{sessions:#?}");
    let main = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(main.status, 200);

    // The learnt key is trusted from now on; a wrong client key is refused plainly.
    let other = dir.path().join("other_ed25519");
    ssh_keygen(&other);
    let out = deliver(&other, &known_hosts, false, "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused the key"), "{stderr}");
    assert!(stderr.contains("sftp_authorized_keys"), "{stderr}");

    // A known_hosts that records another key for this server: always refused.
    let changed = dir.path().join("changed_known_hosts");
    let other_public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(&changed, format!("[127.0.0.1]:{port} {other_public}")).unwrap();
    let out = deliver(&key, &changed, true, "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HOST KEY CHANGED"), "{stderr}");
    assert!(stderr.contains(&fingerprint), "{stderr}");
    assert_eq!(server.live_corte().as_deref(), Some("20270606_2015"));
}

/// A `difusor simulate --serve` running in the background, its stderr in a file; killed
/// when dropped.
struct Serving {
    child: Child,
    log: std::path::PathBuf,
    url: String,
}

impl Serving {
    /// Starts `simulate` with `args` on a free port (`https` with a certificate) and waits
    /// until its index lists `files` files.
    fn start(dir: &Path, scheme: &str, args: &[&str], files: usize, curl_args: &[&str]) -> Serving {
        let log = tempfile::Builder::new()
            .prefix("simulate-")
            .suffix(".log")
            .tempfile_in(dir)
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        let mut child = difusor()
            .args(["simulate", "--every", "0s", "--fecha", "2027-06-06"])
            .args(["--casillas", "300", "--serve", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let port = wait_logged_address(&mut child, &log, &["serving the delivered files"]).port();
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let mut s = Serving {
            child,
            log,
            url: format!("{scheme}://{host}:{port}/"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = curl(&s.url, curl_args);
            let listed: Vec<serde_json::Value> =
                serde_json::from_slice(&r.body).unwrap_or_default();
            if r.status == 200 && listed.len() >= files {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("simulate exited with {status}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "not served: {}", s.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and returns the exit status, waiting up to 15 s.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "SIGTERM did not stop it");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn simulate_serves_its_packages_for_a_difusor_that_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let mut serving = Serving::start(dir.path(), "http", &["--cortes", "2"], 8, &[]);
    let index = curl(&serving.url, &[]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("application/json"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert!(index.header("last-modified").is_some());
    let etag = index.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&index.body).unwrap();
    let names: Vec<&str> = listed.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names,
        [
            "20270606_2000_PREP_CAMP.zip",
            "20270606_2000_PREP_CAMP.zip.sha256",
            "20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip",
            "20270606_2000_PREP_SITIO_COMPLETO_CAMP.zip.sha256",
            "20270606_2015_PREP_CAMP.zip",
            "20270606_2015_PREP_CAMP.zip.sha256",
            "20270606_2015_PREP_SITIO_CAMP.zip",
            "20270606_2015_PREP_SITIO_CAMP.zip.sha256",
        ]
    );
    for entry in &listed {
        assert_eq!(entry["type"], "file", "{entry}");
        assert!(
            entry["mtime"].as_str().unwrap().ends_with(" GMT"),
            "{entry}"
        );
    }
    let again = curl(&serving.url, &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    for entry in listed
        .iter()
        .filter(|e| e["name"].as_str().unwrap().ends_with(".zip"))
    {
        let name = entry["name"].as_str().unwrap();
        let url = format!("{}{name}", serving.url);
        let package = curl(&url, &[]);
        assert_eq!(package.status, 200, "{name}");
        assert_eq!(package.header("content-type"), Some("application/zip"));
        assert_eq!(package.body.len() as u64, entry["size"].as_u64().unwrap());
        let digest = sha256_hex(&package.body);
        let sidecar = curl(&format!("{url}.sha256"), &[]);
        assert_eq!(sidecar.status, 200);
        assert!(
            sidecar
                .header("content-type")
                .unwrap()
                .starts_with("text/plain"),
            "{:?}",
            sidecar.headers
        );
        assert_eq!(sidecar.text(), format!("{digest}  {name}\n"));
        let tag = format!("\"{digest}\"");
        assert_eq!(package.header("etag"), Some(tag.as_str()));
        assert_eq!(
            package.header("content-length"),
            Some(package.body.len().to_string().as_str())
        );
        let cached = curl(&url, &["-H", &format!("If-None-Match: {tag}")]);
        assert_eq!(cached.status, 304, "{name}");
        let since = package.header("last-modified").unwrap();
        let cached = curl(&url, &["-H", &format!("If-Modified-Since: {since}")]);
        assert_eq!(cached.status, 304, "{name}");
        let head = curl(&url, &["-I"]);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("etag"), Some(tag.as_str()));
    }

    // Only plain visible names of the folder are served.
    let folder = serving
        .log()
        .lines()
        .find_map(|l| {
            l.split_once("(files in ")
                .map(|(_, d)| d.trim_end_matches(')').to_owned())
        })
        .expect("the folder is printed");
    std::fs::write(Path::new(&folder).join(".algo"), "hidden").unwrap();
    std::fs::write(Path::new(&folder).join(".x.zip.part"), "partial").unwrap();
    for path in [
        "../x",
        "%2e%2e/x",
        ".algo",
        ".x.zip.part",
        "a%2Fb",
        "nada.zip",
    ] {
        let r = curl(&format!("{}{path}", serving.url), &["--path-as-is"]);
        assert_eq!(r.status, 404, "{path}");
    }
    let index = curl(&serving.url, &[]);
    assert!(!index.text().contains(".algo") && !index.text().contains(".part"));
    assert_eq!(
        index.header("etag"),
        Some(etag.as_str()),
        "hidden files change nothing"
    );
    let post = curl(&serving.url, &["-X", "POST"]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let log = serving.log();
    assert!(log.contains(&format!("serving {}", serving.url)), "{log}");
    assert!(log.contains("until Ctrl-C"), "{log}");
    assert!(serving.terminate().success(), "{}", serving.log());
    assert!(
        !Path::new(&folder).exists(),
        "the temporary folder is removed"
    );
}

#[test]
fn simulate_serves_https_with_a_certificate_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_pair(&dir.path().join("tls"));
    let out = dir.path().join("out");
    let cacert = ["--cacert", cert.to_str().unwrap()];
    let mut serving = Serving::start(
        dir.path(),
        "https",
        &[
            "--cortes",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--serve-cert",
            cert.to_str().unwrap(),
            "--serve-key",
            key.to_str().unwrap(),
        ],
        4,
        &cacert,
    );
    let index = curl(&serving.url, &cacert);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&index.body).unwrap();
    let name = listed[0]["name"].as_str().unwrap();
    let package = curl(&format!("{}{name}", serving.url), &cacert);
    assert_eq!(package.status, 200);
    assert_eq!(package.body, std::fs::read(out.join(name)).unwrap());
    assert!(serving.terminate().success(), "{}", serving.log());
    assert!(out.join(name).exists(), "--out is kept");

    // Ctrl-C during the cortes stops at once, leaving no half-written file.
    let mut slow = difusor()
        .args([
            "simulate",
            "--every",
            "30s",
            "--cortes",
            "5",
            "--casillas",
            "300",
        ])
        .args(["--fecha", "2027-06-06", "--out"])
        .arg(dir.path().join("slow"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("slow/20270606_2000_PREP_CAMP.zip").exists() {
        assert!(Instant::now() < deadline, "the first corte did not arrive");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    Command::new("kill")
        .arg("-INT")
        .arg(slow.id().to_string())
        .status()
        .unwrap();
    let status = slow.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut stderr = String::new();
    slow.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("stopped"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("slow"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
}

#[test]
fn signed_packages_go_over_sftp_with_their_signature_and_a_rejection_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    assert!(
        difusor()
            .args(["keygen", "--dir"])
            .arg(&keys)
            .status()
            .unwrap()
            .success()
    );
    let key = dir.path().join("id_ed25519");
    ssh_keygen(&key);
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
    let public = keys.join("difusor.pub").display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--sftp-listen",
            "127.0.0.1:0",
            "--sftp-authorized-keys",
            authorized.to_str().unwrap(),
            "--evidence-signature",
            "required",
            "--minisign-keys",
            &public,
        ],
    );
    let target = format!("root@127.0.0.1:{}", server.sftp_port());
    let known_hosts = dir.path().join("known_hosts");
    let sftp = [
        "--sftp",
        &target,
        "--sftp-key",
        key.to_str().unwrap(),
        "--sftp-known-hosts",
        known_hosts.to_str().unwrap(),
        "--sftp-accept-new",
    ];
    // Unsigned: the server rejects the first package, and the run stops with its reason.
    let out = simulate_with(&[&sftp[..], &["--cortes", "2"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");
    assert!(
        !stderr.contains("attempts"),
        "a rejection is not retried: {stderr}"
    );
    assert_eq!(wait_events(&server, "rejected", 1).len(), 1);
    assert_eq!(server.live_corte(), None);
    // Signed: the .minisig goes with each package.
    let secret = keys.join("difusor.key").display().to_string();
    let out = simulate_with(&[&sftp[..], &["--cortes", "1", "--sign-key", &secret]].concat());
    assert_success(&out);
    server.wait_corte("20270606_2000");
    assert_eq!(wait_events(&server, "published", 2).len(), 2);
}

#[test]
fn partidos_chooses_the_ballot_and_the_summary_still_equals_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let names = simulate(
        dir.path(),
        &[
            "--casillas",
            "400",
            "--cortes",
            "1",
            "--desde",
            "5h",
            "--partidos",
            "MORENA=0.4,PAN,MC,PES,CI_1,PAN+MC+PES",
        ],
    );
    let data = names
        .iter()
        .find(|n| n.ends_with("_PREP_CAMP.zip"))
        .unwrap();
    let report = inspect_equal(&dir.path().join(data));
    for e in report["elections"].as_array().unwrap() {
        assert_eq!(e["consistent"], true, "{e:#}");
        let columns: Vec<&str> = e["votes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["column"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            [
                "MORENA",
                "PAN",
                "MC",
                "PES",
                "CI_1",
                "C_PAN_MC_PES",
                "C_PAN_MC",
                "C_PAN_PES",
                "C_MC_PES",
                "NO_REGISTRADOS",
                "NULOS"
            ]
        );
    }
    // A ballot that cannot be is refused, naming the flag.
    let bad = simulate_with(&[
        "--out",
        dir.path().to_str().unwrap(),
        "--partidos",
        "PAN,PAN+MC",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--partidos"));
}

#[test]
fn a_drill_by_pull_a_difusor_pulls_every_corte_the_simulator_serves_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_pair(&dir.path().join("tls"));
    let cacert = ["--cacert", cert.to_str().unwrap()];
    let serving = Serving::start(
        dir.path(),
        "https",
        &[
            "--cortes",
            "3",
            "--serve-cert",
            cert.to_str().unwrap(),
            "--serve-key",
            key.to_str().unwrap(),
        ],
        4,
        &cacert,
    );
    let server = Server::start(
        &dir.path().join("difusor"),
        &[
            "--pull-url",
            &serving.url,
            "--pull-ca",
            cert.to_str().unwrap(),
            "--pull-interval",
            "200ms",
            "--evidence-sidecar",
            "required",
        ],
    );
    server.wait_corte("20270606_2030");
    // The corte is live with its first package; the site comes in its second.
    server.wait_published(6);
    let received = wait_events(&server, "received", 6);
    assert_eq!(received.len(), 6, "site and data package of each corte");
    assert!(received.iter().all(|e| e["detail"]["channel"] == "pull"));
    assert!(events(&server, "rejected").is_empty());
    assert!(
        events(&server, "pull-error").is_empty(),
        "{}",
        serving.log()
    );
    // The site the simulator made is what the difusor serves.
    let page = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains(r#""corte_id":"20270606_2030""#),
        "{}",
        page.text()
    );
}

#[test]
fn check_takes_the_latest_package_from_the_institutes_index_and_a_pulling_difusor_passes() {
    let dir = tempfile::tempdir().unwrap();
    let serving = Serving::start(dir.path(), "http", &["--cortes", "2"], 8, &[]);
    let server = Server::start(
        &dir.path().join("d"),
        &["--pull-url", &serving.url, "--pull-interval", "200ms"],
    );
    server.wait_received(4);
    server.wait_corte("20270606_2015");
    server.wait_published(4);
    let latest = format!("{}20270606_2015_PREP_SITIO_CAMP.zip", serving.url);
    // The index (its last package in name order) and the package's own address.
    for package_url in [serving.url.as_str(), latest.as_str()] {
        let out = difusor()
            .args([
                "check",
                &server.url("/"),
                "--json",
                "--package-url",
                package_url,
            ])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{package_url}: {report:#}");
        assert_eq!(
            report["package"]["name"], "20270606_2015_PREP_SITIO_CAMP.zip",
            "{package_url}"
        );
        assert_eq!(report["served_corte"], "20270606_2015");
        assert_eq!(report["served_corte_source"], "header");
        assert!(
            report["counts"]["equal"].as_u64().unwrap() > 10,
            "{report:#}"
        );
    }
    // An address that is not there: the check could not be made.
    let out = difusor()
        .args(["check", &server.url("/"), "--package-url"])
        .arg(format!("{}20270606_2100_PREP_SITIO_CAMP.zip", serving.url))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("404"), "{said}");
}
