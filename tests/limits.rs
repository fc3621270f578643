//! Limits on visitors, with real sockets: slowloris clients are cut, one flooding address gets
//! 429 while another is served, connection caps against connections with requests in flight,
//! oversized requests, trusted proxies.

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

#[test]
fn oversized_requests_are_refused() {
    let (_dir, server) = serving(
        &["--max-uri-bytes", "100", "--max-header-bytes", "8KiB"],
        &[],
    );
    let long = format!("/{}", "a".repeat(200));
    assert_eq!(curl(&server.url(&long), &[]).status, 414);
    let big_header = format!("X-Grande: {}", "b".repeat(20_000));
    let r = curl(&server.url("/"), &["-H", &big_header]);
    assert!(r.status == 431 || r.status == 0, "got {}", r.status);
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
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
    server.stop();
    let log = std::fs::read_to_string(server.data.join("bitacoras/access.log")).unwrap();
    let clients: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(clients, ["203.0.113.5", "127.0.0.2"], "{log}");
}
