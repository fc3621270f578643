//! Limits on visitors, with real sockets: slowloris clients are cut, one flooding address gets
//! 429 while another is served, connection caps against connections with requests in flight,
//! oversized and malformed requests (and their journal entries), trusted proxies.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_slowloris_client_is_cut_while_others_are_served() {
    let (_dir, server) = serving(&["--header-timeout", "1s"], &[]);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let feeder = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..30 {
                std::thread::sleep(Duration::from_millis(200));
                if s.write_all(b"X-Lento: a\r\n").is_err() {
                    return;
                }
            }
        })
    };
    // Meanwhile an ordinary visitor is served.
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
    let got = read_to_close(&mut slow, Duration::from_secs(10)).expect("the slow client is cut");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&got).contains("Corte 20240602_2000"));
    feeder.join().unwrap();

    // An idle kept-alive connection is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.write_all(b"GET /json/main.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got =
        read_to_close(&mut idle, Duration::from_secs(10)).expect("the idle connection is closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_flooding_address_gets_429_and_another_is_still_served() {
    let (_dir, server) = serving(&["--rate-per-address", "1", "--rate-burst", "2"], &[]);
    let responses: Vec<Response> = (0..25)
        .map(|_| curl(&server.url("/json/main.json"), &[]))
        .collect();
    let limited = responses
        .iter()
        .find(|r| r.status == 429)
        .expect("a flood of 25 requests at 1/s gets 429");
    assert!(limited.header("retry-after").is_some());
    assert!(!limited.text().contains("20240602_2000"));
    // Another address on this machine is not affected.
    let other = curl(
        &server.url("/json/main.json"),
        &["--interface", "127.0.0.2"],
    );
    assert_eq!(other.status, 200);
    // And the flooder gets in again once its bucket refills: the time it takes is the test.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 200);
}

/// A flood of requests past an address's rate, pipelined on one connection as an HTTP/2
/// client sends them for a few bytes each, writes ten of its 429 answers a second to the
/// access log and counts the others in `/status`: a flood cannot fill the disk with lines.
#[test]
fn a_flood_past_the_rate_logs_ten_429_a_second_and_counts_the_rest() {
    let (_dir, mut server) = serving(&["--rate-per-address", "1", "--rate-burst", "1"], &[]);
    const REQUESTS: usize = 300;
    let mut flood = b"GET /json/main.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(REQUESTS - 1);
    flood
        .extend_from_slice(b"GET /json/main.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(&flood).unwrap();
    let answers = read_to_close(&mut s, Duration::from_secs(20)).expect("every answer, then close");
    let seconds = started.elapsed().as_secs() + 1;
    let answers = String::from_utf8_lossy(&answers);
    let limited = answers.matches("HTTP/1.1 429 ").count();
    assert_eq!(
        limited + answers.matches("HTTP/1.1 200 ").count(),
        REQUESTS,
        "one answer a request"
    );
    assert!(
        limited >= REQUESTS - 5,
        "{limited} of {REQUESTS} past the rate"
    );
    let unlogged = server.status()["access_log_unlogged_429"]
        .as_u64()
        .expect("access_log_unlogged_429 in /status");
    server.stop(); // the writer flushes what is queued
    let log = std::fs::read_to_string(server.data.join("bitacoras/access.log")).unwrap();
    let logged = log.lines().filter(|l| l.contains("\" 429 ")).count();
    assert_eq!(logged as u64 + unlogged, limited as u64, "{log}");
    assert!(
        (1..=10 * seconds as usize).contains(&logged),
        "{logged} lines of 429 in {seconds} s: {log}"
    );
}

#[test]
fn connection_caps_per_address() {
    let big = corpus::noise(12 * 1024 * 1024);
    let (_dir, server) = serving(
        &["--max-connections-per-address", "2"],
        &[("grande.bin", big.as_slice())],
    );
    // Two downloads in flight (their readers not reading yet): neither can give way.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            send_get(&mut s, "/grande.bin").unwrap();
            s
        })
        .collect();
    server.wait_status("two downloads", |s| s["open_connections"] == 2);
    held.iter().for_each(wait_answer_begins);
    let mut third = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = read_to_close(&mut third, Duration::from_secs(5)).expect("closed at once");
    assert!(got.is_empty(), "nothing is answered over the cap");
    assert_eq!(
        curl(&server.url("/"), &["--interface", "127.0.0.2"]).status,
        200
    );
    for s in &mut held {
        assert_eq!(read_response(s).map(|(status, _)| status), Some(200));
    }
    drop(held);
    server.wait_status("the downloads closed", |s| s["open_connections"] == 0);
    assert_eq!(curl(&server.url("/"), &[]).status, 200, "slots come back");
}

/// The warnings journaled for connections closed because their client broke HTTP.
fn protocol_refusals(server: &Server) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|w| w["detail"]["check"] == "http-protocol")
        .map(|w| w["detail"].clone())
        .collect()
}

/// Too long a target is answered by the site (414, in the access log); a head past the limit
/// (431) and a malformed one (400) never reach it, so their connections' ends are journaled
/// (a `warning`, check `http-protocol`), once a minute per address.
#[test]
fn oversized_and_malformed_request_heads_are_refused_and_journaled() {
    let (_dir, server) = serving(
        &["--max-uri-bytes", "100", "--max-header-bytes", "8KiB"],
        &[],
    );
    let long = format!("/{}", "a".repeat(200));
    assert_eq!(curl(&server.url(&long), &[]).status, 414);
    let big_header = format!("X-Grande: {}", "b".repeat(20_000));
    for _ in 0..3 {
        let r = curl(&server.url("/"), &["-H", &big_header]);
        assert!(r.status == 431 || r.status == 0, "got {}", r.status);
    }
    // A method that is no HTTP token, from another address.
    let r = curl(&server.url("/"), &["--interface", "127.0.0.2", "-X", "G(T"]);
    assert_eq!(r.status, 400);
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while protocol_refusals(&server).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Whatever else was posted is written by now.
    std::thread::sleep(Duration::from_millis(500));
    let mut journaled = protocol_refusals(&server);
    journaled.sort_by_key(|d| d["address"].as_str().unwrap().to_owned());
    assert_eq!(journaled.len(), 2, "one per address: {journaled:?}");
    for (detail, address, error) in [
        (&journaled[0], "127.0.0.1", "message head is too large"),
        (&journaled[1], "127.0.0.2", "invalid HTTP method"),
    ] {
        assert_eq!(detail["address"], address);
        assert_eq!(detail["protocol"], "HTTP/1.1");
        assert!(
            detail["error"].as_str().unwrap().contains(error),
            "{detail}"
        );
        assert!(
            detail["warning"].as_str().unwrap().contains(address),
            "{detail}"
        );
    }
    // The site's own refusal is in the access log, not the journal.
    assert!(
        !journaled
            .iter()
            .any(|d| d["error"].as_str().unwrap().contains("URI")),
        "{journaled:?}"
    );
}

#[test]
fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let (_dir, mut server) = serving(&["--trusted-proxies", "127.0.0.1/32"], &[]);
    curl(&server.url("/"), &["-H", "X-Forwarded-For: 203.0.113.5"]);
    curl(
        &server.url("/"),
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "X-Forwarded-For: 198.51.100.7",
        ],
    );
    // A proxy that writes its hop with a port, or a hop it cannot name, after what the
    // client sent: the client's own entry is never believed.
    for chain in [
        "198.51.100.7, 203.0.113.6:4711",
        "198.51.100.7, [2001:db8::5]:4711",
        "198.51.100.7, unknown",
    ] {
        curl(
            &server.url("/"),
            &["-H", &format!("X-Forwarded-For: {chain}")],
        );
    }
    server.stop();
    let log = std::fs::read_to_string(server.data.join("bitacoras/access.log")).unwrap();
    let clients: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        clients,
        [
            "203.0.113.5",
            "127.0.0.2",
            "203.0.113.6",
            "2001:db8::5",
            "127.0.0.1"
        ],
        "{log}"
    );
}

/// Lines of the server's log that say its accepts fail.
fn accept_failure_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("accept failed") || l.contains("cannot accept visitors"))
        .count()
}

/// Out of file descriptors (the open-file limit lowered under the running server): visitors'
/// connections wait in the kernel's queue, the log says so once, not twenty times a second,
/// and says when they are accepted again.
#[test]
fn out_of_descriptors_is_said_once_and_its_end_too_not_at_every_accept() {
    let (_dir, server) = serving(&["--workers", "1"], &[]);
    let pid = server.pid().unwrap();
    let open = open_files(pid);
    let (soft, limit) = open_files_limit(pid);
    limit(open + 2);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log();
    assert_eq!(accept_failure_lines(&log), 1, "{log}");

    drop(held);
    limit(soft);
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .log()
        .contains("accepting visitors' connections again")
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
