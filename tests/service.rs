//! difusor as a system service: the notifications a real `NOTIFY_SOCKET` listener receives
//! (`READY=1` only once the rebuilt corte is served, the watchdog, `RELOADING=1` and
//! `READY=1` on SIGHUP, `STOPPING=1` on SIGTERM; the programs it runs not told the socket),
//! the configuration read again on SIGHUP (a changed token named, a huge file or a FIFO in
//! its place refused), the manual pages and completions of `difusor generate` as `man` and
//! bash read them, and the unit of `packaging/` as `systemd-analyze` judges it.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// A service manager's notification socket: a real Unix datagram socket in `dir`.
struct Notifications {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Notifications {
    fn bind(dir: &Path) -> Notifications {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notifications { socket, path }
    }

    /// The next datagram, if one arrives within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    }

    /// Datagrams until one has the line `line`; every datagram received, that one last.
    fn until(&self, line: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(d) = self.next(deadline.saturating_duration_since(Instant::now())) {
            let found = d.lines().any(|l| l == line);
            seen.push(d);
            if found {
                return seen;
            }
        }
        panic!("no {line} within {within:?}; received {seen:?}");
    }
}

/// Whether a datagram has the line `line`.
fn has(datagram: &str, line: &str) -> bool {
    datagram.lines().any(|l| l == line)
}

/// Writes `text` as the config file `path` (whole: a temporary name, then a rename).
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_service_manager_is_told_ready_reloading_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The data folder already holds a corte: the start rebuilds it before READY=1.
    let pkg = tmp.path().join("PREP_20240602_2000.zip");
    std::fs::write(&pkg, site_package("20240602_2000", &[])).unwrap();
    assert_success(&ingest_without_server(&pkg, &data));
    let config = tmp.path().join("difusor.toml");
    write_config(&config, "max_connections = 40000\n");
    let notify = Notifications::bind(tmp.path());
    let mut server = Server::launch_with_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );

    // READY=1 is the first thing said, and when it is said the public site serves the
    // rebuilt corte.
    let first = notify
        .next(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no notification; log: {}", server.log()));
    assert!(has(&first, "READY=1"), "first notification: {first:?}");
    assert!(
        has(&first, "STATUS=serving corte 20240602_2000"),
        "{first:?}"
    );
    let public = logged_address(&server.log(), &["serving the public site"])
        .expect("the public listener is bound before READY=1");
    let r = curl(&format!("http://{public}/"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-prep-corte"), Some("20240602_2000"));
    server.wait_ready();

    // The watchdog, every half WATCHDOG_USEC (0.5 s): at least three in a generous 10 s.
    let mut fed = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fed < 3 && Instant::now() < deadline {
        if notify
            .next(Duration::from_secs(2))
            .is_some_and(|d| has(&d, "WATCHDOG=1"))
        {
            fed += 1;
        }
    }
    assert!(fed >= 3, "{fed} WATCHDOG=1 in 10 s");

    // SIGHUP without any certificate: reloaded, not killed; still serving.
    server.signal("HUP");
    let said = notify.until("READY=1", Duration::from_secs(30));
    let reloading = said
        .iter()
        .position(|d| has(d, "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {said:?}"));
    assert!(
        said[reloading].lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "{said:?}"
    );
    assert!(server.alive(), "SIGHUP ended the server: {}", server.log());
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
    assert!(
        server.log().contains("no setting changed"),
        "{}",
        server.log()
    );

    // A changed setting is not applied: the journal says it takes effect at the restart.
    write_config(&config, "max_connections = 30000\n");
    server.signal("HUP");
    notify.until("READY=1", Duration::from_secs(30));
    let warnings = wait_events(&server, "warning", 1);
    let restart = warnings
        .iter()
        .find(|w| w["detail"]["restart_needed"].is_array())
        .unwrap_or_else(|| panic!("no restart_needed warning: {warnings:?}"));
    assert_eq!(
        restart["detail"]["restart_needed"],
        serde_json::json!(["max_connections"])
    );

    // An invalid file: journaled, nothing changed, the server serves on.
    write_config(&config, "max_connections = \"many\"\n");
    server.signal("HUP");
    notify.until("READY=1", Duration::from_secs(30));
    let warnings = wait_events(&server, "warning", 2);
    assert!(
        warnings
            .iter()
            .any(|w| w["detail"]["warning"].as_str().is_some_and(|t| t
                .starts_with("configuration not reloaded, nothing changed")
                && t.contains("max_connections"))),
        "{warnings:?}"
    );
    assert!(server.alive());
    let r = curl(&server.url("/"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-prep-corte"), Some("20240602_2000"));

    // SIGTERM: STOPPING=1, then the process ends cleanly.
    server.signal("TERM");
    notify.until("STOPPING=1", Duration::from_secs(30));
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server stops");
    assert!(status.success(), "{status}; log: {}", server.log());
}

/// The programs the server runs are not told the service manager's socket: systemd's tools
/// (`timedatectl`, run at start for the clock's status) tell it their own `ERRNO=` and
/// `EXIT_STATUS=` as they end, which would reach the manager as the server's. A stand-in
/// `timedatectl` on the `PATH` writes down the environment it was given.
#[test]
fn no_program_the_server_runs_is_told_the_service_managers_socket() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = tmp.path().join("timedatectl.env");
    let fake = bin.join("timedatectl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nenv > {seen}.tmp && mv {seen}.tmp {seen}\necho yes\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let notify = Notifications::bind(tmp.path());
    let mut server = Server::launch_with_env(
        &tmp.path().join("data"),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            ("PATH", &path),
        ],
    );
    notify.until("READY=1", Duration::from_secs(60));
    server.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.exists() {
        assert!(
            Instant::now() < deadline,
            "timedatectl was never run; log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{name}="))),
            "timedatectl was given {name}: {env}"
        );
    }
}

/// The journal's `warning` events that `matches`, once there is one (up to 30 s).
fn wait_warning(
    server: &Server,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<_> = events(server, "warning")
            .into_iter()
            .filter(|w| matches(&w["detail"]))
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no such warning; log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A reload names a token file whose token changed (the old token stays in force until the
/// restart), and refuses, saying why, a config file far too large to be one and a FIFO put
/// in its place, without waiting on it: the next SIGHUP is answered.
#[test]
fn sighup_names_a_changed_token_and_refuses_a_huge_file_or_a_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("difusor.toml");
    let token = tmp.path().join("feed.token");
    std::fs::write(&token, "primer-secreto-0123456789\n").unwrap();
    let text = format!(
        "feed_listen = [\"127.0.0.1:0\"]\nfeed_token_file = {:?}\n",
        token.to_str().unwrap()
    );
    write_config(&config, &text);
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let said = |w: &serde_json::Value, what: &str| {
        w["warning"]
            .as_str()
            .is_some_and(|t| t.starts_with("configuration not reloaded") && t.contains(what))
    };

    // The token rotated in its file: named, for the restart.
    std::fs::write(&token, "segundo-secreto-9876543210\n").unwrap();
    server.signal("HUP");
    let restart = wait_warning(&server, |w| w["restart_needed"].is_array());
    assert_eq!(
        restart[0]["detail"]["restart_needed"],
        serde_json::json!(["feed_token_file"]),
        "{restart:?}"
    );

    // Two MiB of comments: not a config file.
    let huge = format!("{text}{}", "# relleno\n".repeat(220_000));
    write_config(&config, &huge);
    server.signal("HUP");
    wait_warning(&server, |w| said(w, "larger than"));

    // A FIFO in its place: refused at once, no writer awaited.
    std::fs::remove_file(&config).unwrap();
    run_ok(Command::new("mkfifo").arg(&config));
    server.signal("HUP");
    wait_warning(&server, |w| said(w, "not a regular file"));

    // The reloads go on: the file back, the next SIGHUP reads it.
    std::fs::remove_file(&config).unwrap();
    write_config(&config, &text);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&server, "warning")
        .iter()
        .filter(|w| w["detail"]["restart_needed"].is_array())
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(curl(&server.url("/"), &[]).complete, "still serving");
}

#[test]
fn sighup_names_a_rotated_pull_token_and_one_that_cannot_be_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("difusor.toml");
    let token = tmp.path().join("pull.token");
    let write_token = |text: &str| {
        std::fs::write(&token, text).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_token("primer-secreto-0123456789\n");
    // Nothing listens there: the pull fails and goes on, which is all this needs.
    let port = ReservedPort::hold();
    write_config(
        &config,
        &format!(
            "pull_url = [\"https://{}/paquetes/\"]\npull_token_file = {:?}\n",
            port.addr(),
            token.to_str().unwrap()
        ),
    );
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let reloaded = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.log().matches("no setting changed").count() < n {
            assert!(Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The same token: nothing to say.
    server.signal("HUP");
    reloaded(1);

    // The token rotated in its file: the pull client still sends the old one, so it is named
    // for the restart.
    write_token("segundo-secreto-9876543210\n");
    server.signal("HUP");
    let restart = wait_warning(&server, |w| w["restart_needed"].is_array());
    assert_eq!(
        restart[0]["detail"]["restart_needed"],
        serde_json::json!(["pull_token_file"]),
        "{restart:?}"
    );

    // Gone: the next start could not read it, said as an invalid configuration.
    std::fs::remove_file(&token).unwrap();
    server.signal("HUP");
    let unread = wait_warning(&server, |w| {
        w["warning"].as_str().is_some_and(|t| {
            t.starts_with("configuration not reloaded, nothing changed: ")
                && t.contains("setting `pull_token_file`: cannot read")
        })
    });
    assert_eq!(unread.len(), 1, "{unread:?}");

    // The first token back: as in force, nothing to say.
    write_token("primer-secreto-0123456789\n");
    server.signal("HUP");
    reloaded(2);
    let restarts = events(&server, "warning")
        .into_iter()
        .filter(|w| w["detail"]["restart_needed"].is_array())
        .count();
    assert_eq!(restarts, 1);
}

#[test]
fn sighup_reloads_the_https_certificate_and_nothing_is_sent_without_a_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_https(&tmp.path().join("data"), &[]);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log().contains("certificate reloaded") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut server = server;
    assert!(server.alive(), "{}", server.log());
    let r = curl(
        &format!("https://127.0.0.1:{}/", server.tls_port()),
        &["--insecure"],
    );
    assert!(r.complete, "HTTPS after the reload: {}", r.text());
    assert!(
        !server.log().contains("cannot notify the service manager"),
        "{}",
        server.log()
    );
}

#[test]
fn generate_makes_manual_pages_man_renders_and_completions() {
    let tmp = tempfile::tempdir().unwrap();
    let man_dir = tmp.path().join("man");
    let out = run_ok(
        difusor()
            .args(["generate", "man", "--out-dir"])
            .arg(&man_dir),
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    for page in ["difusor.1", "difusor-serve.1", "difusor-generate.1"] {
        assert!(
            listed.lines().any(|l| l.ends_with(page)),
            "{page} not made: {listed}"
        );
    }
    if installed(&["man", "--version"], "man-db") {
        for (page, expect) in [
            ("difusor.1", "rollback"),
            ("difusor-serve.1", "DIFUSOR_DATA_DIR"),
        ] {
            let out = run_ok(
                Command::new("man")
                    .arg("-l")
                    .arg(man_dir.join(page))
                    .env("MANWIDTH", "100")
                    .env("MANPAGER", "cat"),
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("NAME") && text.contains(expect),
                "{page}: {text}"
            );
        }
    }
    // To standard output without --out-dir: the main page.
    let out = run_ok(difusor().args(["generate", "man"]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".ie"));

    for (shell, file, mark) in [
        ("bash", "difusor.bash", "complete -F"),
        ("zsh", "_difusor", "#compdef difusor"),
        ("fish", "difusor.fish", "complete -c difusor"),
        (
            "elvish",
            "difusor.elv",
            "edit:completion:arg-completer[difusor]",
        ),
    ] {
        run_ok(
            difusor()
                .args(["generate", shell, "--out-dir"])
                .arg(tmp.path()),
        );
        let text = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert!(
            text.contains(mark),
            "{shell}: {}",
            &text[..text.len().min(300)]
        );
        assert!(
            text.contains("serve") && text.contains("data-dir"),
            "{shell}"
        );
    }
    // bash itself loads the completion and registers it for difusor.
    let script = tmp.path().join("difusor.bash");
    let out = run_ok(Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p difusor",
        script.display()
    )));
    assert!(String::from_utf8_lossy(&out.stdout).contains("difusor"));
}

#[test]
fn the_packaged_configuration_starts_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        difusor()
            .args(["generate", "config", "--out-dir"])
            .arg(tmp.path()),
    );
    let config = tmp.path().join("difusor.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("data_dir = \"/var/lib/difusor\""), "{text}");
    assert!(
        text.contains(r#"listen = ["0.0.0.0:80", "[::]:80"]"#),
        "{text}"
    );
    // Every setting of the file checked as at a start; the test's own folder and ports.
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(server.status()["live"]["corte"], serde_json::Value::Null);
}

#[test]
fn the_units_pass_systemd_analyze() {
    if !installed(&["systemd-analyze", "--version"], "systemd") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/difusor.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/difusor serve"));
    let path = tmp.path().join("difusor.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/difusor", env!("CARGO_BIN_EXE_difusor")),
    )
    .unwrap();
    assert_unit_verifies(&path);
    let out = run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for difusor.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {report}"));
    assert!(score < 2.5, "exposure {score}: {report}");
}
