//! The admin listener answers operators and the `difusor` commands, never a web page open in
//! an operator's browser: requests naming another host (DNS rebinding) and state-changing
//! requests a page could send are refused, even those of a script that the preview serves
//! under the listener's own origin. Its token is read from a file or the environment,
//! never from the command line.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// Asserts that a refusal whose warning says `words` is in the journal.
fn assert_refusal_journaled(server: &Server, words: &str) {
    let refused = admin_refusals(server);
    assert!(
        refused.iter().any(|w| w["detail"]["warning"]
            .as_str()
            .is_some_and(|t| t.contains(words))),
        "no refusal saying {words:?} in {refused:?}"
    );
}

/// `curl` against the admin listener sending `extra` (method, headers, body).
fn admin(server: &Server, path: &str, extra: &[&str]) -> Response {
    curl(&server.admin(path), extra)
}

/// The journal's `warning` events of check `admin-request` (refusals), once there is one
/// (waited for up to 30 s: the journal is written in the background).
fn admin_refusals(server: &Server) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<_> = events(server, "warning")
            .into_iter()
            .filter(|w| w["detail"]["check"] == "admin-request")
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn web_pages_can_neither_change_nor_read_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    drop_file(
        &server.entrada(),
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    drop_file(
        &server.entrada(),
        "PREP_20240602_2015.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_corte("20240602_2015");
    let evil = "Origin: http://evil.example";
    let notice = r#"{"text":"Resultados falsos"}"#;

    // What a page sends with fetch(…, {mode: "no-cors"}) or a <form>: never asked first.
    let cases: [(&str, Vec<&str>, u16); 7] = [
        (
            "/notice",
            vec![
                "-H",
                evil,
                "-H",
                "Content-Type: text/plain",
                "--data",
                notice,
            ],
            403,
        ),
        (
            "/notice",
            vec!["-H", "Content-Type: text/plain", "--data", notice],
            415,
        ),
        ("/notice", vec!["--data", "text=Resultados+falsos"], 415),
        ("/notice", vec!["-F", "text=Resultados falsos"], 415),
        ("/notice/off", vec!["-X", "POST", "-H", evil], 403),
        (
            "/rollback?corte=20240602_2000",
            vec!["-X", "POST", "-H", evil],
            403,
        ),
        (
            "/ingest",
            vec![
                "-H",
                evil,
                "-H",
                "X-Difusor-Name: PREP_20240602_2030.zip",
                "--data-binary",
                "x",
            ],
            403,
        ),
    ];
    for (path, extra, want) in &cases {
        let r = admin(&server, path, extra);
        assert_eq!(r.status, *want, "{path} {extra:?}: {}", r.text());
        assert!(r.text().contains("refused"), "{}", r.text());
    }
    let status = server.status();
    assert_eq!(
        status["gate"]["notice"],
        serde_json::Value::Null,
        "{status}"
    );
    assert_eq!(status["live"]["corte"], "20240602_2015");

    // DNS rebinding: the page's name now points at 127.0.0.1, and the browser sends it.
    let rebound = format!("Host: rebind.evil.example:{}", server.admin_port);
    for path in ["/preview/json/main.json", "/status", "/"] {
        let r = admin(&server, path, &["-H", &rebound]);
        assert_eq!(r.status, 421, "{path}: {}", r.text());
        assert!(!r.text().contains("20240602_2015"), "{}", r.text());
    }
    let r = admin(&server, "/preview/json/main.json", &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("20240602_2015"));

    let warnings = wait_events(&server, "warning", 1);
    assert!(
        warnings
            .iter()
            .any(|w| w["detail"]["check"] == "admin-request"),
        "{warnings:?}"
    );

    // The commands still work.
    let out = server.run(&["notice", "on", "--text", "Aviso del Instituto"]);
    assert_success(&out);
    assert_eq!(server.status()["gate"]["notice"], "Aviso del Instituto");
    assert_success(&server.run(&["notice", "off"]));
    assert_eq!(server.status()["gate"]["notice"], serde_json::Value::Null);
    assert_success(&server.run(&["rollback", "20240602_2000"]));
    server.wait_corte("20240602_2000");
    let pkg = tmp.path().join("PREP_20240602_2030.zip");
    std::fs::write(&pkg, site_package("20240602_2030", &[])).unwrap();
    assert_success(&server.run(&["ingest", pkg.to_str().unwrap()]));
    server.wait_corte("20240602_2030");
    assert_success(&server.run(&["history"]));
}

/// The preview serves the institute's pages, scripts included, under the admin listener's own
/// origin: a script there (the site's, or one slipped into a package) runs in the operator's
/// browser and tries to put a notice in force. Chromium sends it as any page's request would,
/// and it is refused.
#[test]
fn a_script_of_the_preview_cannot_change_anything_in_a_real_browser() {
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let page = br#"<html><body><p id="r">esperando</p><script>
fetch("/notice", {method: "POST", headers: {"Content-Type": "application/json"},
                  body: JSON.stringify({text: "Aviso falso"})})
  .then(r => { document.getElementById("r").textContent = "respuesta " + r.status; })
  .catch(e => { document.getElementById("r").textContent = "error " + e; });
</script></body></html>"#;
    drop_file(
        &server.entrada(),
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[("prueba.html", page)]),
    );
    server.wait_corte("20240602_2000");
    let out = run_ok(
        headless_chromium(&tmp.path().join("perfil"))
            .args(["--virtual-time-budget=10000", "--dump-dom"])
            .arg(server.admin("/preview/prueba.html")),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("respuesta 403"), "the script's request: {dom}");
    let status = server.status();
    assert_eq!(
        status["gate"]["notice"],
        serde_json::Value::Null,
        "{status}"
    );
    assert_refusal_journaled(&server, "preview");
}

#[test]
fn the_token_comes_from_a_file_or_the_environment_never_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // The flag is refused with the way to do it instead.
    let out = difusor()
        .args(["history", "--data-dir"])
        .arg(&data)
        .args(["--admin-token", "s3creto"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--admin-token is not accepted")
            && err.contains("admin_token_file")
            && err.contains("DIFUSOR_ADMIN_TOKEN"),
        "{err}"
    );
    // So is the key in a config file.
    let file = tmp.path().join("difusor.toml");
    std::fs::write(&file, "admin_token = \"s3creto\"\n").unwrap();
    let out = difusor()
        .args(["history", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin_token_file"), "{err}");

    // From a file: required on every route, and the commands send it.
    let token = "5f0c2a9e7d1b4c3a8e6f";
    let token_file = tmp.path().join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_flag = token_file.to_str().unwrap();
    let server = Server::start(&data, &["--admin-token-file", token_flag]);
    assert_eq!(admin(&server, "/status", &[]).status, 401);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(admin(&server, "/status", &["-H", &bearer]).status, 200);
    let out = server.run(&["notice", "on", "--text", "Aviso"]);
    assert!(!out.status.success(), "no token, no change");
    assert_success(&server.run(&[
        "notice",
        "on",
        "--text",
        "Aviso",
        "--admin-token-file",
        token_flag,
    ]));
    // From the environment.
    let out = difusor()
        .args(["notice", "off", "--data-dir"])
        .arg(&data)
        .args([
            "--admin-listen",
            &format!("127.0.0.1:{}", server.admin_port),
        ])
        .env("DIFUSOR_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    assert_success(&out);
    let status = admin(&server, "/status", &["-H", &bearer]);
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(
        status["gate"]["notice"],
        serde_json::Value::Null,
        "{status}"
    );
}

#[test]
fn an_admin_listener_on_port_0_answers_to_the_port_it_got() {
    let dir = tempfile::tempdir().unwrap();
    // `Server::start` asks for 127.0.0.1:0 and reads the port from the log.
    let server = Server::start(&dir.path().join("d"), &[]);
    let r = curl(&server.admin("/status"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Sockets opened at the admin port and left silent cannot keep an operator out: past its
/// cap the listener closes the oldest idle ones, and `/status` and `notice` still answer.
#[test]
fn silent_connections_cannot_keep_an_operator_out() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let mut silent: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap())
        .collect();
    let status = admin(&server, "/status", &[]);
    assert_eq!(status.status, 200, "{}", status.text());
    assert_success(&server.run(&["notice", "on", "--text", "Aviso de prueba"]));
    let closed = silent
        .iter_mut()
        .map(|s| read_to_close(s, std::time::Duration::from_millis(50)))
        .filter(Option::is_some)
        .count();
    assert!(
        closed >= 100 - 32,
        "the admin listener keeps at most 32 connections of one address; it closed only \
         {closed} of 100"
    );
}

/// An upload that stops halfway (a package, a notice) is answered 408 once it has sent
/// nothing for `send_timeout`, its connection closed and its temporary file removed, and the
/// refusal is journaled: a stalled upload holds no connection and no file for ever.
#[test]
fn an_upload_that_stops_arriving_is_cut_after_the_send_timeout() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--send-timeout", "2s"]);
    let host = format!("127.0.0.1:{}", server.admin_port);
    let heads = [
        format!(
            "POST /ingest HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
             X-Difusor-Name: PREP_20240602_2000.zip\r\nContent-Length: 100000\r\n\r\nPK\x03\x04"
        ),
        format!(
            "POST /notice HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"text\": \"Av"
        ),
    ];
    for head in &heads {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let answer = read_to_close(&mut stream, Duration::from_secs(10))
            .expect("the stalled upload is still open after 10 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("send_timeout"), "{answer}");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "cut before the timeout"
        );
    }
    let left: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the stalled upload left {left:?}");
    assert_refusal_journaled(&server, "stopped arriving");
    // The listener still answers, and a notice sent whole is taken.
    assert_success(&server.run(&["notice", "on", "--text", "Aviso"]));
    assert_eq!(server.status()["gate"]["notice"], "Aviso");
}

/// A server in `dir` whose admin listener requires the token of a file.
fn with_a_token(dir: &std::path::Path) -> Server {
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, "5f0c2a9e7d1b4c3a8e6f\n").unwrap();
    Server::start(
        &dir.join("data"),
        &["--admin-token-file", token_file.to_str().unwrap()],
    )
}

/// A request without the token, or with another, gets 401 and is journaled and logged:
/// guesses at the token leave a trace, the guesses themselves none.
#[test]
fn a_wrong_token_is_refused_and_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let server = with_a_token(tmp.path());
    let r = admin(
        &server,
        "/notice/off",
        &["-X", "POST", "-H", "Authorization: Bearer adivinanza"],
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("not this listener's"), "{}", r.text());
    // Journaled once a minute (the start's own readiness check, without a token, may be the
    // one journaled); logged, among the first ten of the minute.
    let refused = admin_refusals(&server);
    assert_eq!(refused.len(), 1, "{refused:?}");
    let detail = &refused[0]["detail"];
    assert!(
        detail["warning"].as_str().unwrap().contains("token"),
        "{detail}"
    );
    let log = server.log();
    assert!(
        log.contains("the token sent is not this listener's"),
        "{log}"
    );
    assert!(
        !detail.to_string().contains("adivinanza") && !log.contains("adivinanza"),
        "the token sent is not written down: {detail}"
    );
}

/// Anyone who can reach a listener bound beyond loopback can send wrong tokens as fast as
/// the network allows: the log says the first ten of a minute, not each one, so that such a
/// flood cannot bury the log (or make journald drop difusor's other lines).
#[test]
fn a_flood_of_wrong_tokens_is_logged_ten_times_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let server = with_a_token(tmp.path());
    for _ in 0..40 {
        let r = admin(
            &server,
            "/status",
            &["-H", "Authorization: Bearer adivinanza"],
        );
        assert_eq!(r.status, 401, "{}", r.text());
    }
    assert_eq!(admin_refusals(&server).len(), 1);
    let log = server.log();
    let logged = log.matches("admin request refused").count();
    assert_eq!(logged, 10, "{log}");
}

/// The `Bearer` scheme is matched whatever its case (RFC 9110 §11.1), on the admin listener
/// and on the replication feed, which check the token the same way; the token itself is not.
#[test]
fn the_bearer_scheme_is_matched_whatever_its_case() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "5f0c2a9e7d1b4c3a8e6f";
    let token_file = tmp.path().join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_flag = token_file.to_str().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &[
            "--admin-token-file",
            token_flag,
            "--feed-listen",
            "127.0.0.1:0",
            "--feed-token-file",
            token_flag,
        ],
    );
    let feed = format!("http://127.0.0.1:{}/state", server.feed_port());
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let header = format!("Authorization: {scheme} {token}");
        let r = admin(&server, "/status", &["-H", &header]);
        assert_eq!(r.status, 200, "admin, {header}: {}", r.text());
        let r = curl(&feed, &["-H", &header]);
        assert_eq!(r.status, 200, "feed, {header}: {}", r.text());
    }
    let upper = format!("Authorization: Bearer {}", token.to_uppercase());
    assert_eq!(admin(&server, "/status", &["-H", &upper]).status, 401);
    assert_eq!(curl(&feed, &["-H", &upper]).status, 401);
    let basic = format!("Authorization: Basic {token}");
    assert_eq!(admin(&server, "/status", &["-H", &basic]).status, 401);
}

/// The admin listener holds the `Host` to the public listener's rule: a request with two
/// `Host` fields, or one with user information, is refused with 400 (a proxy in front that
/// read the other field, or the host after `@`, would disagree about what was asked).
#[test]
fn a_request_must_name_one_host_plainly() {
    use std::io::{Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let ours = format!("127.0.0.1:{}", server.admin_port);
    let ask = |hosts: &[String]| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let fields: String = hosts.iter().map(|h| format!("Host: {h}\r\n")).collect();
        write!(
            stream,
            "GET /status HTTP/1.1\r\n{fields}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = ask(std::slice::from_ref(&ours));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for hosts in [
        vec![ours.clone(), ours.clone()],
        vec![ours.clone(), "rebind.evil.example".to_owned()],
        vec![format!("user@{ours}")],
    ] {
        let answer = ask(&hosts);
        assert!(answer.starts_with("HTTP/1.1 400"), "{hosts:?}: {answer}");
        assert!(answer.contains("one host"), "{hosts:?}: {answer}");
    }
}

/// At most four packages are received at once, whatever the connections (and HTTP/2
/// streams) they come on: each may hold `max_package_bytes` of temporary disk. One more gets
/// 503 with `Retry-After`, and once those are done an upload is taken again.
#[test]
fn at_most_four_uploads_are_received_at_once() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--send-timeout", "3s"]);
    let host = format!("127.0.0.1:{}", server.admin_port);
    let stalled: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
            write!(
                s,
                "POST /ingest HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
                 X-Difusor-Name: PREP_20240602_2000.zip\r\nContent-Length: 100000\r\n\r\nPK\x03\x04"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let pkg = tmp.path().join("PREP_20240602_2015.zip");
    std::fs::write(&pkg, site_package("20240602_2015", &[])).unwrap();
    let upload = [
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-Difusor-Name: PREP_20240602_2015.zip",
        "--data-binary",
    ];
    let body = format!("@{}", pkg.display());
    let mut args = upload.to_vec();
    args.push(&body);
    let r = admin(&server, "/ingest", &args);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("being received already"), "{}", r.text());
    // The stalled ones are cut after send_timeout; then an upload is taken.
    for mut s in stalled {
        assert!(read_to_close(&mut s, Duration::from_secs(10)).is_some());
    }
    let r = admin(&server, "/ingest", &args);
    assert_eq!(r.status, 200, "{}", r.text());
    server.wait_corte("20240602_2015");
}

/// A token file other users can read is served with, and said at start, with the fix; a FIFO
/// in its place is refused at once, never waited on.
#[test]
fn a_token_file_others_can_read_is_warned_about_and_a_fifo_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("admin.token");
    std::fs::write(&token_file, "5f0c2a9e7d1b4c3a8e6f\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let token = token_file.to_str().unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--admin-token-file", token]);
    let token_warnings = |server: &Server| -> Vec<serde_json::Value> {
        events(server, "warning")
            .into_iter()
            .filter(|w| w["detail"]["check"] == "token-file")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while token_warnings(&server).is_empty() {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let warned = token_warnings(&server);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0]["detail"]["setting"], "admin_token_file");
    let text = warned[0]["detail"]["warning"].as_str().unwrap();
    assert!(
        text.contains(&format!("its token; `chmod 600 {token}`")),
        "{text}"
    );
    drop(server);

    // Kept to its owner: nothing to say. The warning would be journaled before `start`, in
    // the same queue, so once `start` is there it would be too.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&tmp.path().join("data2"), &["--admin-token-file", token]);
    wait_events(&server, "start", 1);
    assert!(token_warnings(&server).is_empty());
    drop(server);

    // A FIFO where the token should be: refused with the reason, at once.
    std::fs::remove_file(&token_file).unwrap();
    let fifo = Command::new("mkfifo").arg(&token_file).status().unwrap();
    assert!(fifo.success());
    let started = Instant::now();
    let out = difusor()
        .args([
            "serve",
            "--data-dir",
            tmp.path().join("data3").to_str().unwrap(),
        ])
        .args(["--admin-token-file", token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin_token_file") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited on the FIFO"
    );
}

/// A package received whole is decided on even when its sender stops waiting for the answer
/// (closes its connection while the publisher is busy with another package): it is published,
/// and no fault of this server's is journaled for it.
#[test]
fn a_package_whose_sender_stops_waiting_is_published_all_the_same() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    // The publisher is held on the first package: the journal, where its arrival is written
    // first, is locked by someone else (for less than the journal's 10 s wait).
    let holder = rusqlite::Connection::open(data.join("bitacora.sqlite")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let first = tmp.path().join("PREP_20240602_2000.zip");
    std::fs::write(&first, site_package("20240602_2000", &[])).unwrap();
    let first_sent = {
        let url = server.admin("/ingest");
        let body = format!("@{}", first.display());
        std::thread::spawn(move || {
            curl(
                &url,
                &[
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-H",
                    "X-Difusor-Name: PREP_20240602_2000.zip",
                    "--data-binary",
                    &body,
                ],
            )
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let second = site_package("20240602_2015", &[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
    write!(
        s,
        "POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\n\
         X-Difusor-Name: PREP_20240602_2015.zip\r\nContent-Length: {}\r\n\r\n",
        server.admin_port,
        second.len()
    )
    .unwrap();
    s.write_all(&second).unwrap();
    // Once the server holds it whole (its temporary file; the first package's may be as
    // long), the sender gives up while its package waits behind the first one.
    let as_long = |len: u64| usize::from(len == second.len() as u64);
    let whole = as_long(std::fs::metadata(&first).unwrap().len()) + 1;
    let received_whole = || {
        std::fs::read_dir(data.join("tmp")).is_ok_and(|dir| {
            dir.flatten()
                .filter(|e| e.metadata().is_ok_and(|m| m.len() == second.len() as u64))
                .count()
                == whole
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !received_whole() {
        assert!(std::time::Instant::now() < deadline, "never received whole");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    drop(holder);
    let r = first_sent.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    server.wait_corte("20240602_2015");
    let faults = events(&server, "intake-error");
    assert!(faults.is_empty(), "{faults:?}");
}

/// What an operator's `rollback` names is a corte id, a publication number or a SHA-256
/// prefix: other text (a paste gone wrong, terminal escapes, a whole page) is refused before
/// anything is looked up, and the journal keeps at most 64 of its characters with every
/// control and bidirectional character made visible, so that neither the journal nor the
/// syslog lines made from it carry what would move an operator's terminal.
#[test]
fn rollback_text_that_names_no_corte_is_refused_and_kept_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    drop_file(
        &server.entrada(),
        "PREP_20240602_2015.zip",
        &site_package("20240602_2015", &[]),
    );
    server.wait_corte("20240602_2015");

    // ESC ] 0 ; … BEL retitles a terminal; U+202E reverses what follows; then 5,000 more.
    let hostile = format!("%1B%5D0%3Bpwned%07%E2%80%AE{}", "A".repeat(5000));
    let r = admin(
        &server,
        &format!("/rollback?corte={hostile}"),
        &["-X", "POST"],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("is not a corte id"), "{}", r.text());
    let out = server.run(&["rollback", "20240602_2015\n\u{1b}[2J"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is not a corte id"),
        "{out:?}"
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2015"));

    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let refused = warnings_of(&server, "rollback");
        if refused.len() >= 2 || Instant::now() > deadline {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused.len(), 2, "{refused:?}");
    for entry in &refused {
        for field in ["corte", "warning"] {
            let text = entry["detail"][field].as_str().unwrap_or_default();
            assert!(
                !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{field} carries control or bidirectional characters: {text:?}"
            );
            assert!(!text.contains(&"A".repeat(65)), "{field} kept it all");
        }
    }
    assert!(
        refused.iter().any(|w| w["detail"]["corte"]
            .as_str()
            .is_some_and(|c| c.starts_with("\\u{1b}]0;pwned\\u{7}\\u{202e}AAA"))),
        "{refused:?}"
    );
}
