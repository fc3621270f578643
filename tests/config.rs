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
    run_ok(
        difusor()
            .args([
                "ingest",
                pkg.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(["--admin-listen", &ReservedPort::hold().addr()]),
    );
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
