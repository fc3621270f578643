//! Journal events sent to syslog (`syslog`): collectors in the test over UDP, TCP (octet
//! counting) and a unix datagram socket receive `received`, `published` and `rejected` as
//! RFC 5424 messages (version 1, PRI = facility × 8 + severity, APP-NAME, PROCID, MSGID, the
//! package and corte as structured data, the detail as JSON); a collector that does not
//! listen stops nothing, and is reached once it listens; one that stops reading holds up no
//! corte and is said in plain words; one that restarts misses no event; one whose machine
//! vanishes is found failing within seconds; a UDP one that refuses is journaled once; a `unix:` path that is no socket is refused at start.

use std::time::Duration;

use crate::support::collectors::{Rfc5424, SyslogReceiver};
use crate::support::*;

/// local3, as `--syslog-facility local3` sets it.
const LOCAL3: u8 = 19;
/// RFC 5424 severities.
const ERROR: u8 = 3;
const NOTICE: u8 = 5;
const INFORMATIONAL: u8 = 6;
/// The SD-ID of difusor's structured data.
const SD_ID: &str = "difusor@32473";

/// Checks the header every message of `server` carries.
fn assert_header(m: &Rfc5424, server: &Server, severity: u8) {
    assert_eq!(m.version, 1, "{m:?}");
    assert_eq!(m.pri, LOCAL3 * 8 + severity, "{m:?}");
    assert_eq!(m.app_name, "difusor", "{m:?}");
    assert_eq!(m.procid, server.pid().unwrap().to_string(), "{m:?}");
    assert!(
        m.timestamp.parse::<jiff::Timestamp>().is_ok(),
        "RFC 3339 time: {m:?}"
    );
    assert!(!m.hostname.is_empty() && !m.hostname.contains(' '), "{m:?}");
}

/// A site package and a broken one dropped into `server`'s intake reach `collector` as
/// `received`, `published` and `rejected` messages.
fn packages_reach(collector: &SyslogReceiver, server: &Server) {
    let start = collector.wait_for("start");
    assert_header(&start, server, NOTICE);
    let good = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), "PREP_20240602_2000.zip", &good);
    server.wait_corte("20240602_2000");
    let sha = sha256_hex(&good);

    let received = collector.wait_for("received");
    assert_header(&received, server, INFORMATIONAL);
    assert_eq!(received.param(SD_ID, "package"), Some(sha.as_str()));
    assert_eq!(
        received.param(SD_ID, "name"),
        Some("PREP_20240602_2000.zip")
    );
    assert_eq!(received.json()["channel"], "watch", "{received:?}");

    let published = collector.wait_for("published");
    assert_header(&published, server, INFORMATIONAL);
    assert_eq!(published.param(SD_ID, "package"), Some(sha.as_str()));
    assert_eq!(published.param(SD_ID, "corte"), Some("20240602_2000"));
    assert_eq!(published.json()["corte"], "20240602_2000");

    let broken = b"PK\x03\x04 this is no zip".to_vec();
    drop_file(&server.entrada(), "PREP_20240602_2015.zip", &broken);
    let rejected = collector.wait_for("rejected");
    assert_header(&rejected, server, ERROR);
    assert_eq!(
        rejected.param(SD_ID, "package"),
        Some(sha256_hex(&broken).as_str())
    );
    let reason = rejected.json()["reason"].as_str().unwrap().to_owned();
    assert!(!reason.is_empty(), "{rejected:?}");
    // The same reason as the journal's.
    let journaled = wait_events(server, "rejected", 1);
    assert_eq!(journaled[0]["detail"]["reason"], reason.as_str());
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
}

fn serve_to(collector: &SyslogReceiver, data: &std::path::Path) -> Server {
    Server::start(
        data,
        &["--syslog", &collector.target, "--syslog-facility", "local3"],
    )
}

#[test]
fn events_reach_a_udp_collector_as_rfc5424() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = SyslogReceiver::udp();
    let server = serve_to(&collector, &tmp.path().join("data"));
    packages_reach(&collector, &server);
    let status = server.status();
    assert!(
        status["syslog"]["sent"].as_u64().unwrap() >= 4,
        "{status:#}"
    );
    assert_eq!(status["syslog"]["dropped"], 0);
}

#[test]
fn events_reach_a_tcp_collector_framed_by_octet_counting() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = SyslogReceiver::tcp();
    let mut server = serve_to(&collector, &tmp.path().join("data"));
    packages_reach(&collector, &server);
    // The stop is sent before the process ends.
    server.stop();
    collector.wait_for("stop");
}

#[test]
fn events_reach_a_unix_datagram_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let collector = SyslogReceiver::unix(&tmp.path().join("log.sock"));
    let server = serve_to(&collector, &tmp.path().join("data"));
    packages_reach(&collector, &server);
}

#[test]
fn a_collector_that_does_not_listen_stops_nothing_and_is_reached_once_it_listens() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on yet: connections are refused.
    let port = ReservedPort::hold();
    let mut server = Server::start(
        &tmp.path().join("data"),
        &["--syslog", &format!("tcp://{}", port.addr())],
    );
    drop_file(
        &server.entrada(),
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    let status = server.wait_status("syslog failing", |s| {
        s["syslog"]["failing_since"].is_string()
    });
    assert!(
        status["syslog"]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{status:#}"
    );
    assert_eq!(status["syslog"]["sent"], 0);
    let page = curl(&server.admin("/"), &[]).text();
    assert!(page.contains("<p class=\"alert\">Syslog: tcp://"), "{page}");
    assert!(server.alive());

    // The collector comes up: what waited is sent, in order.
    let listener = std::net::TcpListener::bind(port.addr()).unwrap();
    let collector = SyslogReceiver::tcp_on(listener);
    let published = collector.wait_for("published");
    assert_eq!(published.param(SD_ID, "corte"), Some("20240602_2000"));
    let ids: Vec<String> = collector
        .messages()
        .iter()
        .filter_map(|m| Rfc5424::parse(m))
        .map(|m| m.msgid)
        .collect();
    let at = |id: &str| ids.iter().position(|m| m == id).unwrap();
    assert!(
        at("start") < at("received") && at("received") < at("published"),
        "{ids:?}"
    );
    server.wait_status("syslog working", |s| s["syslog"]["failing_since"].is_null());
}

/// What `serve --syslog <target>` says when it refuses to start, with its exit status.
fn refused_start(data: &std::path::Path, target: &str) -> (Option<i32>, String) {
    let out = output_within(
        difusor()
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--syslog", target]),
        Duration::from_secs(20),
    )
    .expect("the start is refused at once");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_unix_path_that_is_not_a_socket_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("log");
    std::fs::write(&file, "").unwrap();
    for (path, what) in [
        (&file, "a regular file"),
        (&tmp.path().to_owned(), "a folder"),
    ] {
        let (code, stderr) = refused_start(
            &tmp.path().join("data"),
            &format!("unix:{}", path.display()),
        );
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "setting `syslog`: {} is {what}, not the collector's socket",
                path.display()
            )),
            "{stderr}"
        );
    }
}

/// A network address is read as a URL: a malformed one is refused, never mended into
/// another address (`tcp://[::1:601` was taken for `[::1]:601`).
#[test]
fn a_malformed_collector_address_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    for (target, why) in [
        (
            "tcp://[::1:601",
            "is not a syslog address (invalid IPv6 address)",
        ),
        ("tcp://logs example:601", "is not a syslog address"),
        (
            "udp://10.0.0.9:70000",
            "is not a syslog address (invalid port number)",
        ),
        ("udp://10.0.0.9", "needs a port"),
        (
            "tcp://logs.example.mx:601/ruta",
            "must be only a host and a port",
        ),
        (
            "tcp://admin@logs.example.mx:601",
            "must be only a host and a port",
        ),
    ] {
        let (code, stderr) = refused_start(&tmp.path().join("data"), target);
        assert_eq!(code, Some(2), "{target}: {stderr}");
        assert!(
            stderr.contains(&format!("setting `syslog`: {target:?} {why}")),
            "{target}: {stderr}"
        );
    }
}

#[test]
fn a_collector_that_stops_reading_holds_up_nothing_and_is_said_plainly() {
    let tmp = tempfile::tempdir().unwrap();
    // Bound and never read: once its queue is full, every send waits until its timeout.
    let path = tmp.path().join("log.sock");
    let _collector = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let mut server = Server::start(
        &tmp.path().join("data"),
        &["--syslog", &format!("unix:{}", path.display())],
    );
    for (i, corte) in ["20240602_2000", "20240602_2015", "20240602_2030"]
        .iter()
        .enumerate()
    {
        let started = std::time::Instant::now();
        drop_file(
            &server.entrada(),
            &format!("PREP_{corte}.zip"),
            &site_package(corte, &[]),
        );
        server.wait_corte(corte);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "corte {i} went live {:?} after it was dropped",
            started.elapsed()
        );
        let r = curl(&server.url("/"), &["--max-time", "2"]);
        assert_eq!(r.status, 200);
    }
    let status = server.wait_status("syslog failing", |s| {
        s["syslog"]["failing_since"].is_string()
    });
    let error = status["syslog"]["error"].as_str().unwrap();
    assert!(
        error.contains("took no message within 5 s"),
        "the reason in plain words: {error}"
    );
    let page = curl(&server.admin("/"), &[]).text();
    assert!(page.contains("took no message within 5 s"), "{page}");
    assert!(server.alive());
}

/// The journal's `warning` events about syslog.
fn syslog_warnings(server: &Server) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|e| e["detail"]["check"] == "syslog")
        .collect()
}

#[test]
fn a_failing_collector_is_journaled_once_and_the_warning_reaches_it_when_back() {
    let tmp = tempfile::tempdir().unwrap();
    let port = ReservedPort::hold();
    let target = format!("tcp://{}", port.addr());
    let server = Server::start(&tmp.path().join("data"), &["--syslog", &target]);
    server.wait_status("syslog failing", |s| {
        s["syslog"]["failing_since"].is_string()
    });
    let warnings = wait_events(&server, "warning", 1);
    // Tried again after 1 s and 2 s: three failures, one warning.
    std::thread::sleep(Duration::from_secs(4));
    let journaled = syslog_warnings(&server);
    assert_eq!(journaled.len(), 1, "{warnings:#?}");
    let detail = &journaled[0]["detail"];
    assert_eq!(detail["collector"], target.as_str(), "{detail}");
    let warning = detail["warning"].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "cannot send journal events to the syslog collector {target}: "
        )) && warning.contains("refused"),
        "{warning}"
    );

    // Back: the warning waited in the queue and reaches the collector; no second one.
    let collector = SyslogReceiver::tcp_on(std::net::TcpListener::bind(port.addr()).unwrap());
    let sent = collector.wait_for("warning");
    assert_eq!(sent.json()["check"], "syslog", "{sent:?}");
    server.wait_status("syslog working", |s| s["syslog"]["failing_since"].is_null());
    assert_eq!(syslog_warnings(&server).len(), 1);
}

/// Reads octet-counted frames from `stream` until one whose MSGID is `msgid` has come, then
/// for `linger` more; the messages read.
fn read_frames(stream: &mut std::net::TcpStream, msgid: &str, linger: Duration) -> Vec<String> {
    use std::io::Read as _;
    let mut messages: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    let mut until = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = false;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while std::time::Instant::now() < until {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        while let Some(space) = buf.iter().position(|&b| b == b' ') {
            let n: usize = std::str::from_utf8(&buf[..space]).unwrap().parse().unwrap();
            if buf.len() < space + 1 + n {
                break;
            }
            let message = String::from_utf8_lossy(&buf[space + 1..space + 1 + n]).into_owned();
            buf.drain(..space + 1 + n);
            if !seen && Rfc5424::parse(&message).is_some_and(|m| m.msgid == msgid) {
                seen = true;
                until = std::time::Instant::now() + linger;
            }
            messages.push(message);
        }
    }
    assert!(seen, "no `{msgid}` message: {messages:?}");
    messages
}

/// A collector that restarts (it closes its connection and listens again, as one does when
/// its logs are rotated) misses no event: the first one after it closed is not written into
/// the closed connection, where it would be lost and yet counted as sent.
#[test]
fn a_collector_that_restarts_misses_no_event() {
    let tmp = tempfile::tempdir().unwrap();
    let port = ReservedPort::hold();
    let listener = std::net::TcpListener::bind(port.addr()).unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--syslog", &format!("tcp://{}", port.addr())],
    );
    let (mut first, _) = listener.accept().unwrap();
    let before = read_frames(&mut first, "start", Duration::from_secs(1));
    // The collector stops, having read all it was sent, and starts again.
    drop(first);
    drop(listener);
    std::thread::sleep(Duration::from_millis(200));
    let collector = SyslogReceiver::tcp_on(std::net::TcpListener::bind(port.addr()).unwrap());

    let package = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), "PREP_20240602_2000.zip", &package);
    server.wait_corte("20240602_2000");
    collector.wait_for("published");
    let after: Vec<Rfc5424> = collector
        .messages()
        .iter()
        .filter_map(|m| Rfc5424::parse(m))
        .collect();
    let received = after.iter().find(|m| m.msgid == "received");
    assert_eq!(
        received.and_then(|m| m.param(SD_ID, "name")),
        Some("PREP_20240602_2000.zip"),
        "before the restart: {before:?}; after it: {:?}",
        after.iter().map(|m| &m.msgid).collect::<Vec<_>>()
    );
    // Counted as sent: what the collector got, no more.
    let status = server.wait_status("syslog counted", |s| {
        s["syslog"]["sent"].as_u64() == Some((before.len() + collector.messages().len()) as u64)
    });
    assert!(status["syslog"]["failing_since"].is_null(), "{status:#}");
}

/// A UDP collector whose port is closed (its host answers "port unreachable" to each
/// message, reported at the next one's sending) is journaled once as failing, not again with
/// each message, nor does the warning about it, sent in its turn, make another; once it
/// listens, it is taken to be back.
#[test]
fn a_udp_collector_that_refuses_is_journaled_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A UDP port nothing listens on: each datagram is answered "port unreachable".
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    let target = format!("udp://{addr}");
    drop(closed);
    let server = Server::start(&tmp.path().join("data"), &["--syslog", &target]);
    drop_file(
        &server.entrada(),
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    std::thread::sleep(Duration::from_secs(8));
    let journaled = syslog_warnings(&server);
    assert_eq!(journaled.len(), 1, "{journaled:#?}");
    let status = server.status();
    assert!(status["syslog"]["failing_since"].is_string(), "{status:#}");

    let collector = SyslogReceiver::udp_on(std::net::UdpSocket::bind(addr).unwrap());
    drop_file(
        &server.entrada(),
        "PREP_20240602_2015.zip",
        &site_package("20240602_2015", &[]),
    );
    assert_eq!(
        collector.wait_for("published").param(SD_ID, "corte"),
        Some("20240602_2015")
    );
    server.wait_status("syslog working", |s| s["syslog"]["failing_since"].is_null());
    assert_eq!(syslog_warnings(&server).len(), 1);
}

/// Packets to and from a TCP port of loopback dropped (nftables) while it lives: a collector
/// whose machine went away without a word, as one powered off does.
struct Blackhole(String);

impl Blackhole {
    fn port(port: u16) -> Blackhole {
        let table = format!("difusor_blackhole_{port}");
        for rule in [
            format!("add table inet {table}"),
            format!(
                "add chain inet {table} input {{ type filter hook input priority 0; policy accept; }}"
            ),
            format!("add rule inet {table} input tcp dport {port} drop"),
            format!("add rule inet {table} input tcp sport {port} drop"),
        ] {
            let out = std::process::Command::new("nft")
                .arg(&rule)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "nft {rule}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Blackhole(table)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .output();
    }
}

/// A TCP collector whose machine goes away without closing the connection (powered off, its
/// network cut) is found failing within seconds, not after the system's quarter of an hour
/// of retransmissions, all the while taking messages into the connection to lose them.
#[test]
fn a_collector_that_vanishes_is_found_failing_within_seconds() {
    if !installed(&["nft", "--version"], "nftables") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let collector = SyslogReceiver::tcp();
    let server = serve_to(&collector, &tmp.path().join("data"));
    collector.wait_for("start");
    let port: u16 = collector
        .target
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _gone = Blackhole::port(port);
    let started = std::time::Instant::now();
    for corte in ["20240602_2000", "20240602_2015", "20240602_2030"] {
        drop_file(
            &server.entrada(),
            &format!("PREP_{corte}.zip"),
            &site_package(corte, &[]),
        );
        server.wait_corte(corte);
        std::thread::sleep(Duration::from_secs(8));
    }
    let status = server.wait_status("syslog failing", |s| {
        s["syslog"]["failing_since"].is_string()
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "found failing {:?} after it went away: {status:#}",
        started.elapsed()
    );
}
