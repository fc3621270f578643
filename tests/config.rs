//! Configuration through the CLI: `init`, profiles, flags over environment over file, and
//! clear errors for invalid settings.

use crate::support::*;

#[test]
fn init_writes_a_commented_config_that_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("sitio");
    run_ok(difusor().args([
        "init",
        "--dir",
        site.to_str().unwrap(),
        "--profile",
        "iepc-chiapas-2024",
    ]));
    let text = std::fs::read_to_string(site.join("difusor.toml")).unwrap();
    assert!(text.contains("profile = \"iepc-chiapas-2024\""));
    assert!(text.contains("evidence_sidecar = \"required\""));
    assert!(text.contains("publish_start = \"2024-06-02T20:00:00-06:00\""));
    assert!(
        text.contains("#max_ratio = 250"),
        "defaults are shown commented"
    );
    for sub in ["entrada", "archivo"] {
        assert!(site.join(sub).is_dir(), "{sub}/ is created");
    }
    // Refuses to overwrite.
    let again = difusor()
        .args(["init", "--dir", site.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The written file is accepted; data_dir resolves to its folder.
    let config = site.join("difusor.toml");
    let history = || {
        difusor()
            .args(["history", "--json", "--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let empty = history();
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("nothing was received"));
    let pkg = dir.path().join("20240602_2000_PREP.zip");
    let bytes = site_package("20240602_2000", &[]);
    std::fs::write(&pkg, &bytes).unwrap();
    // The Chiapas profile requires the sidecar.
    let digest = sha256_hex(&bytes);
    std::fs::write(dir.path().join("20240602_2000_PREP.zip.sha256"), digest).unwrap();
    run_ok(&mut ingest_with(&config, &pkg));
    assert!(
        site.join("bitacora.sqlite").exists(),
        "the journal lives in the config's folder"
    );
    let out = history();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cortes"][0]["corte_id"], "20240602_2000");
}

#[test]
fn invalid_settings_name_the_setting_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--timezone", "Marte/Olimpo"], "`timezone`"),
        (&["--listen", "localhost"], "`listen`"),
        (&["--admin-listen", "0.0.0.0:9999"], "admin_token"),
        (&["--settle", "soon"], "`settle`"),
        (&["--max-ratio", "0"], "`max_ratio`"),
        (&["--corte-pattern", "(?P<Y>\\d{4})"], "`corte_pattern`"),
        (&["--profile", "ine-2099"], "unknown profile"),
        (&["--publish-start", "mañana"], "`publish_start`"),
        (&["--workers", "10000"], "`workers`"),
    ];
    for (args, expected) in cases {
        let out = difusor()
            .arg("serve")
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // An unknown key in the file is named.
    let file = dir.path().join("difusor.toml");
    std::fs::write(&file, "lisen = [\"127.0.0.1:80\"]\n").unwrap();
    let out = difusor()
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
}

#[test]
fn flags_win_over_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Each source names its own port, so the ports are known before the servers start: held
    // until then, so that nothing else takes them.
    let reserved: Vec<ReservedPort> = (0..4).map(|_| ReservedPort::hold()).collect();
    let [file_port, env_port, flag_port, admin] = [0, 1, 2, 3].map(|i| reserved[i].port);
    let file = dir.path().join("difusor.toml");
    std::fs::write(
        &file,
        format!("listen = [\"127.0.0.1:{file_port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n"),
    )
    .unwrap();
    let serve = |env: Option<u16>, flag: Option<u16>| {
        let mut c = difusor();
        c.args(["serve", "--config", file.to_str().unwrap()]);
        if let Some(p) = env {
            c.env("DIFUSOR_LISTEN", format!("127.0.0.1:{p}"));
        }
        if let Some(p) = flag {
            c.args(["--listen", &format!("127.0.0.1:{p}")]);
        }
        c.stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    for (env, flag, expected) in [
        (None, None, file_port),
        (Some(env_port), None, env_port),
        (Some(env_port), Some(flag_port), flag_port),
    ] {
        let mut child = serve(env, flag);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut status = 0;
        while std::time::Instant::now() < deadline && status != 503 {
            status = curl(&format!("http://127.0.0.1:{expected}/"), &[]).status;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            status, 503,
            "no corte yet: the server on port {expected} says so"
        );
    }
}

/// A duration past what any setting takes (`99999999999h` typed for `99s`, the largest a
/// duration can be), an update interval of zero, a timeout too short to serve anyone or an
/// interval that would ask a server without pause is refused at start, naming the setting:
/// never a server that starts, then panics on its first connection (a deadline past the end
/// of the clock), cuts every visitor, flags every corte as late or polls the institute's
/// server hundreds of times a second.
#[test]
fn durations_out_of_range_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let largest = "9223372036854775807s";
    let pull: &[&str] = &["--pull-url", "http://127.0.0.1:9/p.zip"];
    let ntp: &[&str] = &["--ntp-servers", "127.0.0.1:9"];
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (&[], "--header-timeout", largest, "`header_timeout`"),
        (&[], "--send-timeout", largest, "`send_timeout`"),
        (&[], "--update-interval", largest, "`update_interval`"),
        (&[], "--update-interval", "0s", "`update_interval`"),
        (&[], "--settle", "99999999999h", "`settle`"),
        (&[], "--rejected-retention", "4000d", "`rejected_retention`"),
        (&[], "--header-timeout", "1ms", "`header_timeout`"),
        (&[], "--send-timeout", "10ms", "`send_timeout`"),
        (pull, "--pull-interval", "1ns", "`pull_interval`"),
        (ntp, "--ntp-interval", "1ms", "`ntp_interval`"),
    ];
    for (with, flag, value, expected) in cases {
        let out = output_within(
            difusor()
                .arg("serve")
                .args(["--data-dir", dir.path().to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(*with)
                .args([*flag, *value]),
            std::time::Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{flag} {value}: the server started"));
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{flag} {value}: {err}");
    }
    // Ten years is still taken.
    let out = output_within(
        difusor()
            .arg("serve")
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args([
                "--rejected-retention",
                "3650d",
                "--header-timeout",
                "87600h",
            ]),
        std::time::Duration::from_secs(3),
    );
    assert!(out.is_none(), "the server starts: {out:?}");
}

/// An access log that cannot be written (`log_dir` where difusor's user may not write; here
/// a folder in the place of `access.log`) stops the start, naming it: the memoria técnica is
/// made from those logs, and a server that served the night without them has no record.
#[test]
fn an_access_log_that_cannot_be_written_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("bitacoras");
    std::fs::create_dir_all(logs.join("access.log")).unwrap();
    let out = output_within(
        difusor()
            .arg("serve")
            .args(["--data-dir", dir.path().join("datos").to_str().unwrap()])
            .args(["--log-dir", logs.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]),
        std::time::Duration::from_secs(20),
    )
    .expect("the server started without its access log");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access.log") && err.contains("`log_dir`"),
        "{err}"
    );
}

/// Mistakes a start must refuse before it serves anything, each naming its settings: one
/// address for two listeners, a local `publish_start` that a daylight-saving change skips or
/// repeats (it would move the embargo by an hour in silence), a `max_header_bytes` below
/// what HTTP/1 can be held to (HTTP/2 would refuse every browser), and one above 64 KiB (every
/// open connection may hold a head that large: a typo would let a few hundred connections of
/// one visitor take gigabytes).
#[test]
fn settings_a_server_could_not_keep_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = ReservedPort::hold();
    let other = ReservedPort::hold();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--listen", &port.addr(), "--admin-listen", &port.addr()],
            "settings `listen` and `admin_listen`",
        ),
        (
            &[
                "--listen",
                &port.addr(),
                "--listen",
                &port.addr(),
                "--admin-listen",
                &other.addr(),
            ],
            "setting `listen`",
        ),
        (
            &[
                "--listen",
                &port.addr(),
                "--admin-listen",
                &other.addr(),
                "--health-listen",
                &port.addr(),
            ],
            "settings `listen` and `health_listen`",
        ),
        (
            &[
                "--timezone",
                "America/Tijuana",
                "--publish-start",
                "2026-03-08T02:30",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            "setting `publish_start`",
        ),
        (
            &[
                "--timezone",
                "America/Tijuana",
                "--publish-end",
                "2026-11-01T01:30",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            "setting `publish_end`",
        ),
        (
            &[
                "--max-header-bytes",
                "100",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            "setting `max_header_bytes`",
        ),
        (
            // 16 MiB for 16 KiB: every connection could hold a head that large.
            &[
                "--max-header-bytes",
                "16MiB",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            "setting `max_header_bytes`: 16.0 MiB is more than 64 KiB",
        ),
    ];
    for (args, expected) in cases {
        let out = output_within(
            difusor()
                .arg("serve")
                .args(["--data-dir", dir.path().to_str().unwrap()])
                .args(*args),
            std::time::Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{args:?}: the server started"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// `data_dir = ""` in the config file means its default, the file's folder: never the folder
/// the program happens to be started in (`/` under systemd), where a start from elsewhere
/// would find neither the journal nor the archive.
#[test]
fn an_empty_data_dir_in_the_file_is_the_file_s_folder() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("sitio");
    let elsewhere = dir.path().join("otra");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let config = site.join("difusor.toml");
    std::fs::write(
        &config,
        "data_dir = \"\"\npublish_start = \"\"\ncorte_window_margin = \"\"\n",
    )
    .unwrap();
    let pkg = dir.path().join("20240602_2000_PREP.zip");
    std::fs::write(&pkg, site_package("20240602_2000", &[])).unwrap();
    run_ok(ingest_with(&config, &pkg).current_dir(&elsewhere));
    assert!(
        site.join("bitacora.sqlite").exists(),
        "the journal is beside the file"
    );
    assert!(
        !elsewhere.join("bitacora.sqlite").exists(),
        "not in the working folder"
    );
}

/// `difusor ingest pkg --config config`, on a free admin port.
fn ingest_with(config: &std::path::Path, pkg: &std::path::Path) -> std::process::Command {
    let mut cmd = difusor();
    cmd.args([
        "ingest",
        pkg.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ])
    .args(["--admin-listen", &ReservedPort::hold().addr()]);
    cmd
}
