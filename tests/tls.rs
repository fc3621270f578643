//! HTTPS with a real client: HTTP/2 by ALPN, HSTS on HTTPS only, and a certificate renewed
//! without a restart (an expired one refused, a chain in the wrong order named as such).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// curl over HTTPS trusting `ca`: (HTTP status, HTTP version).
fn https(url: &str, ca: &Path) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--http2",
            "-w",
            "%{http_code} %{http_version}",
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, version) = text.split_once(' ').unwrap_or(("0", ""));
    (code.parse().unwrap_or(0), version.to_owned())
}

/// A server under `dir` serving HTTPS with a copy of the pair in `pair/tls/` (the copies'
/// paths returned, to be replaced in place), with corte 20240602_2000 live.
fn https_server(dir: &Path, pair: &Path) -> (Server, PathBuf, PathBuf) {
    let live_cert = dir.join("cert.pem");
    let live_key = dir.join("key.pem");
    std::fs::copy(pair.join("tls/cert.pem"), &live_cert).unwrap();
    std::fs::copy(pair.join("tls/key.pem"), &live_key).unwrap();
    let server = Server::start(
        &dir.join("d"),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            live_cert.to_str().unwrap(),
            "--tls-key",
            live_key.to_str().unwrap(),
        ],
    );
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    (server, live_cert, live_key)
}

/// Two pairs under `dir` (`a/`, `b/`), and an [`https_server`] serving a copy of the first.
fn two_pairs_first_served(dir: &Path) -> (Server, PathBuf, PathBuf, PathBuf, PathBuf) {
    let (first, second) = (dir.join("a"), dir.join("b"));
    self_signed_pair(&first);
    self_signed_pair(&second);
    let (server, live_cert, live_key) = https_server(dir, &first);
    (server, first, second, live_cert, live_key)
}

/// Waits up to 20 s for the server at `url` to present a certificate `ca` trusts.
fn wait_certificate(url: &str, ca: &Path, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while https(url, ca).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the renewed pair was not picked up: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn https_serves_http2_with_hsts_and_renews_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, first, second, live_cert, live_key) = two_pairs_first_served(dir.path());

    let url = format!("https://localhost:{}/json/main.json", server.tls_port());
    assert_eq!(
        https(&url, &first.join("tls/cert.pem")),
        (200, "2".to_owned())
    );
    let r = curl(
        &url,
        &["--cacert", first.join("tls/cert.pem").to_str().unwrap()],
    );
    assert_eq!(r.text(), r#"{"corte":"20240602_2000"}"#);
    assert_eq!(r.header("x-prep-corte"), Some("20240602_2000"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(
        curl(&server.url("/json/main.json"), &[]).header("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );
    // HTTP/1.1 is offered too.
    let h1 = curl(
        &url,
        &[
            "--http1.1",
            "--cacert",
            first.join("tls/cert.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(h1.status, 200);

    // Renewal: new files in place are picked up without a restart.
    std::fs::copy(second.join("tls/key.pem"), &live_key).unwrap();
    std::fs::copy(second.join("tls/cert.pem"), &live_cert).unwrap();
    wait_certificate(&url, &second.join("tls/cert.pem"), &server);
    assert_eq!(
        https(&url, &first.join("tls/cert.pem")).0,
        0,
        "the old certificate is no longer offered"
    );
}

/// An HTTP/1.0 client over HTTPS offers `http/1.0` alone by ALPN (`curl --http1.0`, what a
/// monitoring probe may run): it is served as over plain HTTP, not refused in the handshake
/// with `no_application_protocol`.
#[test]
fn an_http1_0_client_offering_only_http1_0_by_alpn_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let pair = dir.path().join("a");
    self_signed_pair(&pair);
    let (server, _, _) = https_server(dir.path(), &pair);
    let url = format!("https://localhost:{}/json/main.json", server.tls_port());
    let ca = pair.join("tls/cert.pem");
    let out = Command::new("curl")
        .args(["-sv", "--max-time", "10", "--http1.0", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{http_code}", &url])
        .output()
        .unwrap();
    let (body, verbose) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        verbose
            .lines()
            .any(|l| l.contains("ALPN") && l.contains("http/1.0")),
        "curl offered no http/1.0 by ALPN: {verbose}"
    );
    assert_eq!(
        body, "{\"corte\":\"20240602_2000\"}\n200",
        "curl said: {verbose}"
    );
    assert!(verbose.contains("< HTTP/1.0 200"), "{verbose}");
    assert!(handshake_refusals(&server).is_empty(), "{}", server.log());
}

/// A renewed pair copied in with the modification times of the files it replaces (`cp -p`,
/// `rsync -a` or `touch -r` from a copy made the same moment) and renamed into place is still
/// noticed without a SIGHUP.
#[test]
fn a_renewed_pair_renamed_into_place_with_the_old_files_times_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (server, first, second, live_cert, live_key) = two_pairs_first_served(dir.path());
    let url = format!("https://localhost:{}/json/main.json", server.tls_port());
    assert_eq!(https(&url, &first.join("tls/cert.pem")).0, 200);

    for (new, live) in [("key.pem", &live_key), ("cert.pem", &live_cert)] {
        let staged = dir.path().join(format!("{new}.new"));
        std::fs::copy(second.join("tls").join(new), &staged).unwrap();
        let old = std::fs::metadata(live).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&staged)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::rename(&staged, live).unwrap();
    }
    wait_certificate(&url, &second.join("tls/cert.pem"), &server);
}

/// A renewal that puts an expired certificate in place (the old one copied back by mistake,
/// say) is refused: journaled with the reason, and the valid certificate stays in service.
#[test]
fn an_expired_certificate_put_in_place_is_refused_and_the_old_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a");
    self_signed_pair(&first);
    let (server, live_cert, live_key) = https_server(dir.path(), &first);
    let url = format!("https://localhost:{}/json/main.json", server.tls_port());
    assert_eq!(https(&url, &first.join("tls/cert.pem")).0, 200);

    // A pair for localhost that expired in 2021.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&key).unwrap();
    std::fs::write(&live_key, key.serialize_pem()).unwrap();
    std::fs::write(&live_cert, expired.pem()).unwrap();
    server.signal("HUP");
    // (The five-second look at the files may find the key changed before the certificate,
    // and refuse that pair first.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events(&server, "warning").iter().any(|w| {
        w["detail"]["warning"].as_str().is_some_and(|t| {
            t.starts_with("HTTPS certificate not reloaded") && t.contains("expired")
        })
    }) {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        https(&url, &first.join("tls/cert.pem")).0,
        200,
        "the valid certificate is still served"
    );
}

#[test]
fn https_without_a_certificate_is_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let out = difusor()
        .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--tls-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_cert"));
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = difusor()
        .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--tls-listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            bad.to_str().unwrap(),
            "--tls-key",
            bad.to_str().unwrap(),
        ])
        .args(["--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.pem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A chain whose authority comes before the server's own certificate (the order of the
/// files an authority sends, pasted as they came) is refused at start saying that the order
/// is wrong, not that the key does not belong to the certificate.
#[test]
fn a_chain_in_the_wrong_order_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (chain, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&chain, format!("{}{}", pki.ca_pem, pki.server_pem.0)).unwrap();
    std::fs::write(&key, &pki.server_pem.1).unwrap();
    let out = output_within(
        difusor()
            .args([
                "serve",
                "--data-dir",
                dir.path().join("d").to_str().unwrap(),
            ])
            .args([
                "--tls-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--tls-cert", chain.to_str().unwrap()])
            .args(["--tls-key", key.to_str().unwrap()]),
        Duration::from_secs(20),
    )
    .expect("refused at once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chain.pem"), "{stderr}");
    assert!(
        stderr.contains("wrong order") && stderr.contains("certificate 2 of the file"),
        "{stderr}"
    );
}

#[test]
fn check_over_https_reports_the_handshake_and_stops_at_an_unknown_authority() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    let cert = server.self_signed_cert();
    let bytes = site_package("20240602_2000", &[]);
    let package = dir.path().join("20240602_2000_PREP.zip");
    std::fs::write(&package, &bytes).unwrap();
    drop_file(&server.entrada(), "20240602_2000_PREP.zip", &bytes);
    server.wait_corte("20240602_2000");
    let url = format!("https://localhost:{}/", server.tls_port());
    let check = |extra: &[&str]| {
        let out = difusor()
            .args(["check", &url, "--json", "--package"])
            .arg(&package)
            .args(extra)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };

    let (code, report) = check(&["--pull-ca", cert.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report:#}");
    let tls = &report["tls"];
    assert_eq!(tls["protocol"], "TLSv1.3", "{tls}");
    assert_eq!((&tls["alpn"], &tls["http2"]), (&"h2".into(), &true.into()));
    assert_eq!(report["http_version"], "HTTP/2");
    // The end of validity is the certificate's own, as openssl reads it.
    let enddate = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl (installed with ca-certificates)");
    let year = String::from_utf8_lossy(&enddate.stdout)
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned();
    let not_after = tls["not_after"].as_str().unwrap();
    assert!(not_after.starts_with(&year), "{not_after} vs {year}");
    assert!(tls["days_left"].as_i64().unwrap() > 365, "{tls}");

    // Without the authority the certificate does not verify: nothing is judged, status 2.
    let (code, report) = check(&[]);
    assert_eq!(code, Some(2), "{report:#}");
    assert_eq!(report["result"], "unchecked");
    let finding = report["findings"][0].as_str().unwrap();
    assert!(
        finding.starts_with("TLS:") && finding.contains("certificate"),
        "{finding}"
    );
    assert_eq!(report["files"].as_array().unwrap().len(), 0);
}

/// A client that speaks no TLS, or none this server accepts, is refused and journaled (a
/// `warning`, check `tls-handshake`), once a minute per address however many times it tries;
/// a connection closed before its handshake is no refusal.
#[test]
fn refused_handshakes_are_journaled_once_a_minute_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    let port = server.tls_port();
    let refusals = || warnings_of(&server, "tls-handshake");
    // Connected and closed without a word, as port scanners and TCP checks do.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    // Plain HTTP to the HTTPS port, three times, then a client that offers only TLS 1.1.
    for _ in 0..3 {
        let r = curl(&format!("http://127.0.0.1:{port}/"), &[]);
        assert_ne!(r.status, 200);
    }
    let old = Command::new("curl")
        .args(["-sk", "--tlsv1.1", "--tls-max", "1.1", "-o", "/dev/null"])
        .arg(format!("https://127.0.0.1:{port}/"))
        .status()
        .unwrap();
    assert!(!old.success(), "TLS 1.1 is refused");
    let deadline = Instant::now() + Duration::from_secs(10);
    while refusals().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Whatever else was posted is written by now.
    std::thread::sleep(Duration::from_millis(500));
    let journaled = refusals();
    assert_eq!(
        journaled.len(),
        1,
        "one address, once a minute: {journaled:#?}"
    );
    let detail = &journaled[0]["detail"];
    assert_eq!(detail["address"], "127.0.0.1");
    assert!(
        detail["warning"]
            .as_str()
            .unwrap()
            .contains("corrupt message"),
        "the first refusal is the plain HTTP request, not the closed connection: {detail}"
    );
}

/// Refusals from many addresses cannot flood the journal: at most 60 are journaled a minute,
/// whatever addresses they come from (here 80 addresses of 127.0.0.0/8, each refused once).
#[test]
fn refused_handshakes_from_many_addresses_are_journaled_at_most_sixty_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    let url = format!("http://127.0.0.1:{}/", server.tls_port());
    for i in 2..82 {
        let from = format!("127.0.0.{i}");
        let r = curl(&url, &["--interface", &from]);
        assert_ne!(r.status, 200, "{from}");
    }
    let refusals = || warnings_of(&server, "tls-handshake").len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refusals() < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        refusals(),
        60,
        "80 addresses refused, 60 journaled in the minute"
    );
}

/// `openssl s_client` to `port` over `version` (`-tls1_3`, `-tls1_2`), saving its session in
/// `session` and offering the one saved there before, if any: whether the server resumed it.
fn resumed(port: u16, version: &str, session: &Path) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        version,
    ])
    .arg("-sess_out")
    .arg(session.with_extension("new"));
    if session.exists() {
        cmd.arg("-sess_in").arg(session);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                b"GET /json/main.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        // Time for the response and the TLS 1.3 tickets that follow the handshake.
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // A resumed TLS 1.2 session gets no new ticket: the one offered stays.
    if session.with_extension("new").exists() {
        std::fs::rename(session.with_extension("new"), session).unwrap();
    }
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    text.lines().any(|l| l.starts_with("Reused,"))
}

/// `visitors` new visitors to `port`, each a full handshake whose session the server may keep.
fn other_visitors(port: u16, visitors: usize) {
    let url = format!("https://localhost:{port}/json/main.json");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-k",
        "--http1.1",
        "--no-sessionid",
        "-H",
        "Connection: close",
    ])
    .args(["-w", "%{http_code}\n"]);
    for _ in 0..visitors {
        cmd.args(["-o", "/dev/null"]).arg(&url);
    }
    let out = cmd.output().unwrap();
    let answered = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == "200")
        .count();
    assert_eq!(answered, visitors);
}

#[test]
fn a_returning_visitor_resumes_its_tls_session_however_many_came_between() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    for version in ["-tls1_3", "-tls1_2"] {
        let session = dir.path().join(format!("session{version}"));
        assert!(
            !resumed(server.tls_port(), version, &session),
            "a first visit is a full handshake ({version})"
        );
        // More visitors than a server-side session cache of rustls's default size holds:
        // the session is resumed from its ticket, which the server does not need to keep.
        other_visitors(server.tls_port(), 600);
        assert!(
            resumed(server.tls_port(), version, &session),
            "a second visit resumes the first one's session ({version})"
        );
    }
}

/// Printable text of `len` bytes from `seed`, whose bytes tell their positions apart and
/// still compress (so that the server also makes compressed variants of it).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len)
        .map(|i| match i % 61 {
            60 => b'\n',
            _ => b"0123456789,abcdefghij"[rng.usize(..21)],
        })
        .collect()
}

#[test]
fn http2_responses_multiplexed_on_one_connection_arrive_whole() {
    // Sizes around the HTTP/2 codec's copy threshold (1 KiB), a TLS record (16 KiB), the
    // server's coalescing limit (16 KiB) and its memory frame (64 KiB), and large files.
    let sizes = [
        1, 200, 1024, 1029, 1100, 8_000, 16_384, 16_385, 40_000, 65_536, 70_000, 1_500_000,
    ];
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        files.push((format!("datos/t{i}.csv"), text(len, i as u64)));
        files.push((format!("datos/b{i}.bin"), corpus::noise(len)));
    }
    let members: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &members),
    );
    server.wait_corte("20240602_2000");

    // Every file three times, 64 streams at once on one connection; once asking for
    // compressed variants (decoded by curl), once for the files as they are.
    for compressed in [true, false] {
        let out_dir = dir.path().join(format!("out-{compressed}"));
        std::fs::create_dir(&out_dir).unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--http2", "--parallel", "--parallel-max", "64"])
            .args(["--max-time", "60", "--cacert"])
            .arg(server.self_signed_cert())
            .args(["-w", "%{http_code} %{http_version} %{num_connects}\n"]);
        if compressed {
            cmd.arg("--compressed");
        }
        let mut expected = Vec::new();
        for round in 0..3 {
            for (i, (name, bytes)) in files.iter().enumerate() {
                let out = out_dir.join(format!("{round}-{i}"));
                cmd.arg("-o")
                    .arg(&out)
                    .arg(format!("https://localhost:{}/{name}", server.tls_port()));
                expected.push((out, name, bytes));
            }
        }
        let out = cmd.output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{report}");
        assert!(
            lines.iter().all(|l| l.starts_with("200 2 ")),
            "every answer 200 over HTTP/2: {report}"
        );
        let connects: u32 = lines
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u32>().ok())
            .sum();
        assert_eq!(connects, 1, "all on one connection: {report}");
        for (path, name, bytes) in expected {
            let got = std::fs::read(&path).unwrap();
            assert!(
                got == **bytes,
                "{name} (compressed: {compressed}): {} bytes arrived, {} expected",
                got.len(),
                bytes.len()
            );
        }
    }
}

/// A TLS 1.3 ClientHello record naming `server_name` (any bytes) and offering `alpn`, with
/// an X25519 key share of random bytes: the server does the whole work of its first flight
/// while the client computes nothing.
fn client_hello(server_name: &[u8], alpn: &[&[u8]]) -> Vec<u8> {
    fn with_len16(body: &[u8]) -> Vec<u8> {
        let mut v = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend(with_len16(body));
        v
    }
    let mut rng = fastrand::Rng::new();
    let mut random = |n: usize| (0..n).map(|_| rng.u8(..)).collect::<Vec<u8>>();
    let mut extensions = Vec::new();
    let mut name = vec![0];
    name.extend(with_len16(server_name));
    extensions.extend(extension(0, &with_len16(&name)));
    extensions.extend(extension(10, &with_len16(&[0, 0x1d, 0, 0x17])));
    extensions.extend(extension(13, &with_len16(&[4, 3, 8, 4, 4, 1, 8, 7])));
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|p| [&[u8::try_from(p.len()).unwrap()][..], p].concat())
            .collect();
        extensions.extend(extension(16, &with_len16(&list)));
    }
    extensions.extend(extension(43, &[2, 3, 4]));
    let mut share = vec![0, 0x1d];
    share.extend(with_len16(&random(32)));
    extensions.extend(extension(51, &with_len16(&share)));
    extensions.extend(extension(45, &[1, 1]));
    let mut body = vec![3, 3];
    body.extend(random(32));
    body.push(32);
    body.extend(random(32));
    body.extend(with_len16(&[0x13, 0x01, 0x13, 0x02, 0x13, 0x03]));
    body.extend([1, 0]);
    body.extend(with_len16(&extensions));
    let mut handshake = vec![1];
    handshake.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend(body);
    // In records of at most 16 KiB, as TLS allows.
    handshake
        .chunks(16_384)
        .flat_map(|chunk| [&[22, 3, 1][..], &with_len16(chunk)].concat())
        .collect()
}

/// The TLS handshakes of `server` refused and journaled so far.
fn handshake_refusals(server: &Server) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|w| w["detail"]["check"] == "tls-handshake")
        .collect()
}

/// A server name no TLS server can use (16 KiB of it, with escape sequences, a newline and a
/// NUL), sent again and again, is refused each time and journaled once with the reason, and
/// nowhere copied: not into the journal, not into the log, which stays small.
#[test]
fn a_hostile_server_name_is_refused_and_journaled_once_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    let log_before = server.log().len();
    let mut name = b"\x1b[31mevil\n\0".to_vec();
    name.extend(std::iter::repeat_n(b'z', 16_000));
    let hello = client_hello(&name, &[b"h2"]);
    for _ in 0..200 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.tls_port())).unwrap();
        std::io::Write::write_all(&mut s, &hello).unwrap();
        let answer = read_to_close(&mut s, Duration::from_secs(10)).expect("closed");
        assert_eq!(
            answer.first(),
            Some(&21),
            "a TLS alert, no handshake: {answer:?}"
        );
    }
    // A visitor still gets in.
    let r = curl(
        &format!("https://127.0.0.1:{}/", server.tls_port()),
        &["-k"],
    );
    assert_eq!(r.status, 503, "served (the page before the first corte)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while handshake_refusals(&server).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let journaled = handshake_refusals(&server);
    assert_eq!(journaled.len(), 1, "{journaled:#?}");
    let warning = journaled[0]["detail"]["warning"].as_str().unwrap();
    assert!(
        warning.contains("refused") && !warning.contains("zzz") && !warning.contains("evil"),
        "{warning}"
    );
    let log = server.log();
    let logged = &log[log_before..];
    assert!(
        !logged.contains("zzzz") && !logged.contains("evil"),
        "the name reached the log: {}",
        &logged[..logged.len().min(2_000)]
    );
    assert!(
        logged.len() < 64 * 1024,
        "200 refusals wrote {} bytes of log",
        logged.len()
    );
}

/// One address opening TLS connections as fast as it can, each sending a recorded
/// ClientHello (the server's key exchange and signature done for a client that computes
/// nothing), gets handshakes up to its burst and `tls_handshakes_per_address` (here a burst
/// of 50 and the default 200 a second); the rest are closed before their handshake, and that
/// is journaled. Another address is served meanwhile, and the first is again a second later.
#[test]
fn one_address_opening_tls_connections_without_end_is_held_to_a_handshake_rate() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &["--rate-burst", "50"]);
    let port = server.tls_port();
    let hello = client_hello(b"localhost", &[b"h2", b"http/1.1"]);
    let started = Instant::now();
    let (mut answered, mut closed) = (0usize, 0usize);
    for _ in 0..2_000 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 1];
        let first_flight = s.write_all(&hello).is_ok() && matches!(s.read(&mut first), Ok(1));
        if first_flight && first[0] == 22 {
            answered += 1;
        } else {
            closed += 1;
        }
    }
    let took = started.elapsed().as_secs_f64();
    // The burst, the rate over the time taken, and a few for the clock's grain.
    let allowed = 50 + (200.0 * took).ceil() as usize + 5;
    assert!(
        answered <= allowed,
        "{answered} handshakes in {took:.1} s, {allowed} allowed"
    );
    assert!(answered >= 50, "the burst is served: {answered}");
    assert_eq!(answered + closed, 2_000);
    let url = format!("https://127.0.0.1:{port}/");
    let other = curl(&url, &["-k", "--interface", "127.0.0.2"]);
    assert_eq!(
        other.status, 503,
        "another address is served (before the first corte)"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        curl(&url, &["-k"]).status,
        503,
        "the same address a second later"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while handshake_refusals(&server).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let journaled = handshake_refusals(&server);
    assert_eq!(journaled.len(), 1, "{journaled:#?}");
    let detail = &journaled[0]["detail"];
    assert_eq!(detail["address"], "127.0.0.1");
    assert!(
        detail["warning"]
            .as_str()
            .unwrap()
            .contains("closed before their handshake: more than 200 a second"),
        "{detail}"
    );
    let status = server.status();
    assert_eq!(
        status["connections_refused"].as_u64(),
        Some(closed as u64),
        "counted as refused connections"
    );
}
