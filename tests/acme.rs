//! Automatic HTTPS over ACME against a real ACME server (Pebble): a certificate obtained by
//! TLS-ALPN-01 and by HTTP-01 (before the gate opens), renewed in place under an open
//! connection, kept across a restart, and a failed renewal journaled and shown with the old
//! certificate still served; a certificate that arrives expired is refused and not ordered
//! again at once; a certificate kept from another directory (staging) is replaced at once
//! once `acme_directory` changes; and, against an ACME server of the test's own making, a
//! chain that carries the server's own private key is refused and a problem document a
//! megabyte long, full of terminal escapes, is shown clipped and escaped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::pebble::{Pebble, pebble_installed};
use crate::support::*;

/// The name the certificates are for; Pebble's DNS answers 127.0.0.1 for every name.
const NAME: &str = "resultados.prep.test";

/// curl over HTTPS to `NAME` on `port` (resolved to 127.0.0.1), trusting `root`.
fn https(port: u16, path: &str, root: &Path) -> Response {
    curl(
        &format!("https://{NAME}:{port}{path}"),
        &[
            "--resolve",
            &format!("{NAME}:{port}:127.0.0.1"),
            "--cacert",
            root.to_str().unwrap(),
        ],
    )
}

/// A TLS client (rustls) trusting only `root`.
fn client_config(root: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

use rustls::pki_types::pem::PemObject as _;

/// An HTTP/1.1 keep-alive connection over TLS to `NAME`, as a browser keeps one open.
struct KeptAlive {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl KeptAlive {
    fn open(port: u16, root: &Path) -> KeptAlive {
        let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
        let conn = rustls::ClientConnection::new(client_config(root), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        KeptAlive { tls }
    }

    /// The serial number of the certificate this connection got.
    fn serial(&self) -> String {
        serial_of(&self.tls.conn.peer_certificates().unwrap()[0])
    }

    /// GET `path` on this connection: the status and the body.
    fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        write!(
            self.tls,
            "GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: keep-alive\r\n\r\n"
        )
        .unwrap();
        self.tls.flush().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.tls.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .expect("a content-length");
        let mut body = vec![0; length];
        self.tls.read_exact(&mut body).unwrap();
        (status, body)
    }
}

/// The serial number of a new connection's certificate (hex bytes, as openssl prints them).
fn served_serial(port: u16, root: &Path) -> String {
    KeptAlive::open(port, root).serial()
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string()
}

/// The ACME flags of a server using `pebble`.
fn acme_flags(pebble: &Pebble, tls: &ReservedPort, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--tls-listen",
        &tls.addr(),
        "--acme-domains",
        NAME,
        "--acme-email",
        "soporte@prep.test",
        "--acme-directory",
        &pebble.directory,
        "--acme-directory-ca",
        pebble.ca.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

/// Pebble in `dir`, issuing certificates valid `validity_seconds` that it validates by
/// TLS-ALPN-01 on the port returned (for `--tls-listen`).
fn pebble_for_tls_alpn(dir: &Path, validity_seconds: u64) -> (Pebble, ReservedPort) {
    let tls = ReservedPort::hold();
    let unused_http = ReservedPort::hold();
    let pebble = Pebble::start(
        &dir.join("pebble"),
        unused_http.port,
        tls.port,
        validity_seconds,
    );
    (pebble, tls)
}

/// Waits up to `within` until `cond` holds, or panics naming `what`.
fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the metric line starting with `name ` in `/metrics`.
fn metric(server: &Server, name: &str) -> Option<String> {
    let text = curl(&server.admin("/metrics"), &[]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(str::to_owned)
}

#[test]
fn tls_alpn_01_obtains_renews_in_place_keeps_across_a_restart_and_survives_a_failed_renewal() {
    if !pebble_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Certificates live 90 s; renewed when less than 60 s is left, so 30 s after issue.
    let (mut pebble, tls) = pebble_for_tls_alpn(dir.path(), 90);
    let root = pebble.root();
    let flags = acme_flags(&pebble, &tls, &["--acme-renew-before", "60s"]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &flags);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");

    // The certificate, obtained by TLS-ALPN-01, is served to curl trusting Pebble's root.
    wait_until("the ACME certificate", Duration::from_secs(60), || {
        https(tls.port, "/json/main.json", &root).status == 200
    });
    let r = https(tls.port, "/json/main.json", &root);
    assert_eq!(r.text(), r#"{"corte":"20240602_2000"}"#);
    let issued = wait_events(&server, "acme-certificate", 1);
    assert_eq!(issued[0]["detail"]["renewal"], false, "{issued:?}");
    let first = served_serial(tls.port, &root);
    let status = server.status();
    assert_eq!(
        status["acme"]["certificate"]["serial"],
        first.as_str(),
        "{status:#}"
    );
    assert_eq!(status["acme"]["challenge"], "tls-alpn-01");
    assert_eq!(status["acme"]["consecutive_failures"], 0);
    // Kept in the data folder, private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("acme")), 0o700);
    assert_eq!(mode(&data.join("acme/certificate.pem")), 0o600);
    assert_eq!(mode(&data.join("acme/account.json")), 0o600);
    let kept = std::fs::read_to_string(data.join("acme/certificate.pem")).unwrap();
    assert!(kept.contains("BEGIN CERTIFICATE") && kept.contains("PRIVATE KEY"));

    // Renewal under an open keep-alive connection that goes on reading, as a page does:
    // new connections get the new certificate, the open one keeps working with its own.
    let mut page = KeptAlive::open(tls.port, &root);
    assert_eq!(page.serial(), first);
    let mut renewed = first.clone();
    wait_until("the renewal", Duration::from_secs(90), || {
        let (status, body) = page.get("/json/main.json");
        assert_eq!(
            (status, body.as_slice()),
            (200, &br#"{"corte":"20240602_2000"}"#[..])
        );
        renewed = served_serial(tls.port, &root);
        renewed != first
    });
    assert_eq!(
        page.get("/json/main.json").0,
        200,
        "the open connection still works"
    );
    assert_eq!(
        page.serial(),
        first,
        "and keeps the certificate it began with"
    );
    assert_eq!(https(tls.port, "/json/main.json", &root).status, 200);
    // Newest first.
    let issued = wait_events(&server, "acme-certificate", 2);
    assert_eq!(issued[0]["detail"]["renewal"], true, "{issued:?}");
    assert_eq!(issued[0]["detail"]["serial"], renewed.as_str());
    assert_eq!(issued[1]["detail"]["serial"], first.as_str());
    drop(page);

    // Restart with Pebble stopped: the kept certificate is served at once.
    pebble.stop();
    server.restart();
    assert_eq!(served_serial(tls.port, &root), renewed);
    assert_eq!(https(tls.port, "/json/main.json", &root).status, 200);

    // Its renewal comes due and fails: journaled, on /status and /metrics; the old
    // certificate stays.
    let warnings = wait_until_acme_warning(&server);
    let detail = &warnings[0]["detail"];
    assert!(
        detail["warning"].as_str().unwrap().contains(NAME),
        "{detail}"
    );
    let status = server.wait_status("the failure on /status", |s| {
        s["acme"]["consecutive_failures"].as_u64() >= Some(1)
    });
    assert!(
        !status["acme"]["last_error"].as_str().unwrap().is_empty(),
        "{status:#}"
    );
    assert_eq!(status["acme"]["certificate"]["serial"], renewed.as_str());
    let expiry = status["acme"]["certificate"]["not_after_unix"]
        .as_i64()
        .unwrap();
    assert_eq!(
        metric(&server, "difusor_acme_certificate_expiry_seconds"),
        Some(expiry.to_string())
    );
    assert_eq!(
        metric(&server, "difusor_acme_consecutive_failures"),
        Some("1".to_owned())
    );
    let page = curl(&server.admin("/"), &[]).text();
    assert!(page.contains("ACME: no certificate obtained"), "{page}");
    assert_eq!(served_serial(tls.port, &root), renewed);
    assert_eq!(https(tls.port, "/json/main.json", &root).status, 200);
}

/// The setup tried first against one directory (Let's Encrypt's staging server, as the
/// README advises) and then pointed at another: the certificate kept from the first, trusted
/// by no browser, is served only until the directory now configured issues one, ordered at
/// once rather than at the kept certificate's renewal date two months later.
#[test]
fn a_certificate_kept_from_another_directory_is_replaced_at_once() {
    if !pebble_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Both directories issue certificates valid 90 days, as Let's Encrypt's are.
    let days_90 = 90 * 86_400;
    let (mut staging, tls) = pebble_for_tls_alpn(dir.path(), days_90);
    let staging_root = staging.root();
    let flags = acme_flags(&staging, &tls, &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut server = Server::start(&dir.path().join("d"), &flags);
    wait_until("the staging certificate", Duration::from_secs(60), || {
        https(tls.port, "/", &staging_root).status != 0
    });
    let from_staging = served_serial(tls.port, &staging_root);
    staging.stop();

    let unused_http = ReservedPort::hold();
    let production = Pebble::start(
        &dir.path().join("production"),
        unused_http.port,
        tls.port,
        days_90,
    );
    let production_root = production.root();
    server.extra = acme_flags(&production, &tls, &[]);
    server.restart();
    wait_until(
        "a certificate of the directory now configured",
        Duration::from_secs(60),
        || https(tls.port, "/", &production_root).status != 0,
    );
    let status = server.status();
    let certificate = &status["acme"]["certificate"];
    assert_ne!(certificate["serial"], from_staging.as_str(), "{status:#}");
    assert_eq!(
        certificate["directory"],
        production.directory.as_str(),
        "{status:#}"
    );
    assert_eq!(status["acme"]["consecutive_failures"], 0, "{status:#}");
    let kept = std::fs::read_to_string(dir.path().join("d/acme/certificate.pem")).unwrap();
    assert!(
        kept.starts_with(&format!("ACME directory: {}\n", production.directory)),
        "{kept}"
    );
}

/// The journal's `warning` events of check `acme`, waited for up to 60 s.
fn wait_until_acme_warning(server: &Server) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    wait_until("an acme warning", Duration::from_secs(60), || {
        found = events(server, "warning")
            .into_iter()
            .filter(|e| e["detail"]["check"] == "acme")
            .collect();
        !found.is_empty()
    });
    found
}

#[test]
fn http_01_is_answered_before_the_publication_gate_opens() {
    if !pebble_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (http, tls) = (ReservedPort::hold(), ReservedPort::hold());
    let pebble = Pebble::start(&dir.path().join("pebble"), http.port, tls.port, 3600);
    let root = pebble.root();
    let flags = acme_flags(
        &pebble,
        &tls,
        &[
            "--acme-challenge",
            "http-01",
            "--publish-start",
            "2099-06-02T20:00",
            "--publish-end",
            "",
        ],
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_on(&dir.path().join("d"), http.port, &flags);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    // The certificate is obtained while results are held: HTTPS answers with the gate.
    wait_until("the ACME certificate", Duration::from_secs(60), || {
        https(tls.port, "/json/main.json", &root).status == 503
    });
    let r = https(tls.port, "/json/main.json", &root);
    assert!(r.text().contains("se publicarán"), "{}", r.text());
    assert_eq!(server.status()["acme"]["challenge"], "http-01");
    wait_events(&server, "acme-certificate", 1);
    // No pending token now: the challenge path answers 404, never the site nor the gate.
    let r = curl(&server.url("/.well-known/acme-challenge/abc"), &[]);
    assert_eq!(r.status, 404);
    let r = curl(
        &server.url(&format!("/.well-known/acme-challenge/{}", "a".repeat(300))),
        &[],
    );
    assert_eq!(r.status, 404);
    assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 503);
    // Pebble's validation reached the plain listener and was answered there.
    let log = server.log();
    assert!(log.contains("answering an ACME HTTP-01 challenge"), "{log}");
    assert!(!log.contains("ACME TLS-ALPN-01"), "{log}");
}

/// An ACME server that no longer knows the account kept in `acme/account.json` (its
/// database reset, the account removed) answers `accountDoesNotExist` to every order: the
/// server creates a new account, keeps it in place of the old, says so in the journal and
/// obtains its certificate, instead of failing every order until an operator steps in.
#[test]
fn an_account_the_acme_server_forgot_is_replaced_by_a_new_one() {
    if !pebble_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pebble, tls) = pebble_for_tls_alpn(dir.path(), 3600);
    let root = pebble.root();
    let flags = acme_flags(&pebble, &tls, &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, &flags);
    wait_events(&server, "acme-certificate", 1);
    server.stop();

    // The kept account becomes one Pebble never had, and the certificate is gone: the next
    // start orders one with that account.
    let account = data.join("acme/account.json");
    let mut kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&account).unwrap()).unwrap();
    let id = kept["credentials"]["id"].as_str().unwrap().to_owned();
    let (base, _) = id.rsplit_once('/').unwrap();
    let forgotten = format!("{base}/0000000000000000");
    kept["credentials"]["id"] = forgotten.clone().into();
    std::fs::write(&account, serde_json::to_vec(&kept).unwrap()).unwrap();
    std::fs::remove_file(data.join("acme/certificate.pem")).unwrap();

    server.launch();
    server.wait_ready();
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    wait_until("the ACME certificate", Duration::from_secs(60), || {
        https(tls.port, "/json/main.json", &root).status == 200
    });
    let warnings = warnings_of(&server, "acme-account");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let said = warnings[0]["detail"]["warning"].as_str().unwrap();
    assert!(
        said.contains("no longer knows the account") && said.contains(&pebble.directory),
        "{said}"
    );
    let now: serde_json::Value = serde_json::from_slice(&std::fs::read(&account).unwrap()).unwrap();
    let id = now["credentials"]["id"].as_str().unwrap();
    assert!(id != forgotten && id.starts_with(base), "{id}");
    assert_eq!(server.status()["acme"]["consecutive_failures"], 0);
}

/// An ACME server issuing certificates that have expired by the time they arrive (Pebble
/// with a lifetime of one second: its end is its start): each is refused as a failure, never
/// served, and the server backs off instead of ordering the next one at once.
#[test]
fn a_certificate_that_arrives_expired_is_refused_and_not_ordered_again_at_once() {
    if !pebble_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pebble, tls) = pebble_for_tls_alpn(dir.path(), 1);
    let flags = acme_flags(&pebble, &tls, &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("d"), &flags);

    let warnings = wait_until_acme_warning(&server);
    let error = warnings[0]["detail"]["error"].as_str().unwrap();
    assert!(error.contains("expired"), "{warnings:?}");
    // Another order would have come within a second; the next one waits a minute.
    std::thread::sleep(Duration::from_secs(5));
    let issued = events(&server, "acme-certificate");
    assert!(
        issued.is_empty(),
        "an expired certificate was taken: {issued:?}"
    );
    let status = server.status();
    assert!(status["acme"]["certificate"].is_null(), "{status:#}");
    assert_eq!(status["acme"]["consecutive_failures"], 1, "{status:#}");
    let r = curl(
        &format!("https://{NAME}:{}/", tls.port),
        &["-k", "--resolve", &format!("{NAME}:{}:127.0.0.1", tls.port)],
    );
    assert!(!r.complete && r.status == 0, "no certificate is served");
    assert!(!dir.path().join("d/acme/certificate.pem").exists());
}

#[test]
fn without_an_acme_server_http_serves_https_refuses_and_the_failure_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed_pair(&dir.path().join("ca"));
    let tls = ReservedPort::hold();
    let nowhere = ReservedPort::hold();
    let server = Server::start(
        &dir.path().join("d"),
        &[
            "--tls-listen",
            &tls.addr(),
            "--acme-domains",
            NAME,
            "--acme-directory",
            &format!("https://{}/dir", nowhere.addr()),
            "--acme-directory-ca",
            cert.to_str().unwrap(),
        ],
    );
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 200);
    let warnings = wait_until_acme_warning(&server);
    assert!(
        warnings[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{warnings:?}"
    );
    let r = curl(
        &format!("https://{NAME}:{}/", tls.port),
        &["-k", "--resolve", &format!("{NAME}:{}:127.0.0.1", tls.port)],
    );
    assert!(!r.complete && r.status == 0, "the handshake fails");
    wait_until("the log line", Duration::from_secs(10), || {
        server
            .log()
            .contains("no certificate has been obtained over ACME yet")
    });
    let status = server.status();
    assert!(status["acme"]["certificate"].is_null(), "{status:#}");
    assert_eq!(status["acme"]["consecutive_failures"], 1);
    assert!(status["acme"]["next_attempt_at"].is_string());
    assert_eq!(
        metric(&server, "difusor_acme_certificate_expiry_seconds"),
        Some("0".to_owned())
    );
    assert_eq!(
        metric(&server, "difusor_acme_consecutive_failures"),
        Some("1".to_owned())
    );
}

#[test]
fn acme_settings_that_cannot_work_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_pair(&dir.path().join("pair"));
    let refused = |extra: &[&str]| {
        let out = output_within(
            difusor()
                .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
                .args(["--admin-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
                .args(extra),
            Duration::from_secs(20),
        )
        .expect("refused at once");
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let both = refused(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--acme-domains",
        NAME,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        both.contains("settings `acme_domains` and `tls_cert`"),
        "{both}"
    );
    let no_https = refused(&["--acme-domains", NAME]);
    assert!(
        no_https.contains("settings `acme_domains` and `tls_listen`"),
        "{no_https}"
    );
    let wildcard = refused(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--acme-domains",
        "*.prep.test",
    ]);
    assert!(wildcard.contains("setting `acme_domains`"), "{wildcard}");
    let challenge = refused(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--acme-domains",
        NAME,
        "--acme-challenge",
        "dns-01",
    ]);
    assert!(challenge.contains("acme-challenge"), "{challenge}");
}

/// An ACME server of its own making: it validates every order at once, and for the
/// certificate sends `chain` (whatever the request asked), as a hostile or broken CA would;
/// or, given `order_problem`, answers every new order with that problem document (400).
/// Its directory URL.
fn lying_acme_server(chain: String, order_problem: Option<String>) -> String {
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let order = |status: &str| {
        format!(
            r#"{{"status":"{status}","identifiers":[{{"type":"dns","value":"{NAME}"}}],
                "authorizations":["{base}/authz"],"finalize":"{base}/finalize",
                "certificate":"{base}/cert"}}"#
        )
    };
    let (ready, valid) = (order("ready"), order("valid"));
    let directory = format!(
        r#"{{"newNonce":"{base}/nonce","newAccount":"{base}/account","newOrder":"{base}/order"}}"#
    );
    let authz = format!(
        r#"{{"status":"valid","identifier":{{"type":"dns","value":"{NAME}"}},"challenges":[]}}"#
    );
    let url = format!("{base}/directory");
    std::thread::spawn(move || {
        let mut finalized = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            let _ = stream.read_exact(&mut vec![0; length]);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, extra, body) = match path.as_str() {
                "/order" if order_problem.is_some() => (
                    "400 Bad Request",
                    "Content-Type: application/problem+json\r\n".to_owned(),
                    order_problem.clone().unwrap_or_default(),
                ),
                "/directory" => ("200 OK", String::new(), directory.clone()),
                "/nonce" => ("200 OK", String::new(), String::new()),
                "/account" => (
                    "201 Created",
                    format!("Location: {base}/account/1\r\n"),
                    r#"{"status":"valid"}"#.to_owned(),
                ),
                "/order" => {
                    finalized = false;
                    (
                        "201 Created",
                        format!("Location: {base}/order/1\r\n"),
                        ready.clone(),
                    )
                }
                "/order/1" if finalized => ("200 OK", String::new(), valid.clone()),
                "/order/1" => ("200 OK", String::new(), ready.clone()),
                "/authz" => ("200 OK", String::new(), authz.clone()),
                "/finalize" => {
                    finalized = true;
                    ("200 OK", String::new(), valid.clone())
                }
                "/cert" => ("200 OK", String::new(), chain.clone()),
                _ => ("404 Not Found", String::new(), String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nReplay-Nonce: n{}\r\n{extra}Content-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                fastrand::u64(..),
                body.len()
            );
        }
    });
    url
}

/// A certificate whose chain, as the ACME server sends it, carries a private key (the
/// server's own, with the certificate it matches) is refused: difusor serves only the key it
/// made and asked a certificate for, never one that the ACME server (or anyone who read its
/// answer) holds.
/// A server in `dir` with an HTTPS listener whose certificate for [`NAME`] is ordered from
/// the ACME `directory`, and that listener's port.
fn with_acme_directory(dir: &Path, directory: &str) -> (Server, ReservedPort) {
    let tls = ReservedPort::hold();
    let server = Server::start(
        &dir.join("d"),
        &[
            "--tls-listen",
            &tls.addr(),
            "--acme-domains",
            NAME,
            "--acme-directory",
            directory,
        ],
    );
    (server, tls)
}

#[test]
fn a_chain_that_carries_the_acme_servers_own_key_is_refused() {
    let theirs = rcgen::generate_simple_self_signed(vec![NAME.to_owned()]).unwrap();
    let serial = serial_of(theirs.cert.der());
    let chain = format!(
        "{}{}",
        theirs.cert.pem(),
        theirs.signing_key.serialize_pem()
    );
    let directory = lying_acme_server(chain, None);
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = with_acme_directory(dir.path(), &directory);
    let mut status = server.status();
    wait_until("the order's end", Duration::from_secs(60), || {
        status = server.status();
        status["acme"]["consecutive_failures"] != 0 || !status["acme"]["certificate"].is_null()
    });
    assert_ne!(
        status["acme"]["certificate"]["serial"].as_str(),
        Some(serial.as_str()),
        "the ACME server's key is served: {status:#}"
    );
    assert!(status["acme"]["certificate"].is_null(), "{status:#}");
    let why = status["acme"]["last_error"].as_str().unwrap();
    assert!(why.contains("besides certificates"), "{why}");
    assert!(!dir.path().join("d/acme/certificate.pem").exists());
    let r = curl(
        &format!("https://{NAME}:{}/", tls.port),
        &["-k", "--resolve", &format!("{NAME}:{}:127.0.0.1", tls.port)],
    );
    assert!(!r.complete && r.status == 0, "no certificate is served");
}

/// An ACME server that answers an order with a problem document a megabyte long, its detail
/// full of terminal escapes (a window title, a screen clear, line breaks): the failure is
/// journaled, logged and shown with the escapes made visible and the detail cut short, the
/// start of what it said kept.
#[test]
fn a_huge_problem_with_terminal_escapes_from_the_acme_server_is_shown_clipped_and_escaped() {
    let hostile = format!(
        "too many orders\u{1b}]0;PWNED\u{7}\u{1b}[2J\r\nFAKE LOG LINE {}",
        "x".repeat(900_000)
    );
    let problem = serde_json::json!({
        "type": "urn:ietf:params:acme:error:rateLimited",
        "detail": hostile,
    });
    let directory = lying_acme_server(String::new(), Some(problem.to_string()));
    let dir = tempfile::tempdir().unwrap();
    let (server, _tls) = with_acme_directory(dir.path(), &directory);
    let warnings = wait_until_acme_warning(&server);
    let shown = [
        warnings[0]["detail"]["error"].as_str().unwrap().to_owned(),
        warnings[0]["detail"]["warning"]
            .as_str()
            .unwrap()
            .to_owned(),
        server.status()["acme"]["last_error"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    for text in &shown {
        assert!(text.contains("too many orders"), "{text:.300}");
        assert!(
            text.contains("\\u{1b}]0;PWNED\\u{7}"),
            "the escape is made visible: {text:.300}"
        );
        assert!(
            !text.chars().any(char::is_control),
            "no control character: {text:.300}"
        );
        assert!(text.len() < 4096, "{} bytes: {text:.300}", text.len());
    }
    let log = server.log();
    assert!(!log.contains("\u{1b}]0;PWNED"), "the log holds the escape");
    assert!(
        log.len() < 500_000,
        "the log holds the detail: {} bytes",
        log.len()
    );
}
