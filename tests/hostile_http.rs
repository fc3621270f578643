//! The public listener under hostile and crowded visitors, with real sockets and curl: silent
//! connections, connection caps filled by them, clients that stop reading, HTTP/2 clients
//! that break the protocol (rapid reset, MadeYouReset, endless CONTINUATION) or ask for
//! nothing but flood
//! PING and SETTINGS frames, HTTP/1.1 requests without exactly one valid `Host`, requests
//! smuggled in a body, HEAD and CONNECT on every generated page over HTTP/1.1 and HTTP/2,
//! and a carrier NAT's crowd behind one address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// The large download of these tests: 12 MiB, kept in memory by the server.
const BIG: usize = 12 * 1024 * 1024;

/// `open_connections` of `/status`.
fn open_connections(s: &serde_json::Value) -> u64 {
    s["open_connections"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_silent_connection_is_cut_within_the_header_timeout() {
    let (_dir, server) = serving(&["--header-timeout", "1s"], &[]);
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Part of the HTTP/2 preface, then nothing: the protocol cannot be told yet.
    let mut preface = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    for (what, stream) in [("silent", &mut silent), ("partial preface", &mut preface)] {
        let got = read_to_close(stream, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("the {what} connection is still open after 10 s"));
        assert!(got.is_empty(), "{what}: {}", String::from_utf8_lossy(&got));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "cut after {took:?}, with a header timeout of 1 s"
    );
    assert_eq!(curl(&server.url("/"), &[]).status, 200);
}

#[test]
fn silent_sockets_filling_the_descriptors_leave_room_for_visitors_and_operators() {
    open_files_at_least(4096);
    let dir = tempfile::tempdir().unwrap();
    // 512 descriptors: a quarter (128) is kept from the public listener.
    let server = Server::start_with_open_files(
        &dir.path().join("d"),
        &["--header-timeout", "60s"],
        Some(512),
    );
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    // 600 connections that never send a byte, from six addresses.
    let silent: Vec<TcpStream> = (0..600)
        .map(|i| connect_from(&format!("127.0.0.{}", 2 + i % 6), server.port))
        .collect();
    let s = server.wait_status("the public side full of silent connections", |s| {
        s["connections_evicted"].as_u64().unwrap_or(0) >= 600 - 384
    });
    assert!(open_connections(&s) <= 384, "{s:#}");
    assert_eq!(s["max_open_connections"], 384, "{s:#}");
    // A visitor still gets in, and the operators' listener still answers.
    let visitor = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(visitor.status, 200);
    assert_eq!(visitor.text(), r#"{"corte":"20240602_2000"}"#);
    assert_eq!(curl(&server.admin("/status"), &[]).status, 200);
    assert_eq!(curl(&server.admin("/metrics"), &[]).status, 200);
    drop(silent);
    assert!(
        server.log().contains("open-file limit"),
        "the limit is logged: {}",
        server.log()
    );
}

#[test]
fn a_crowded_address_gives_its_oldest_idle_connection_to_a_newcomer() {
    let (_dir, server) = serving(
        &[
            "--max-connections-per-address",
            "20",
            "--header-timeout",
            "60s",
        ],
        &[],
    );
    // One at a time, each accepted before the next is opened: with a listening socket per
    // worker the server's order of acceptance is otherwise not the order of connection.
    // The first 20 fill the address's share; each of the next 10 takes the oldest's place.
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..30u64 {
        held.push(TcpStream::connect(("127.0.0.1", server.port)).unwrap());
        server.wait_status("the connection accepted", |s| {
            open_connections(s) == (i + 1).min(20)
                && s["connections_evicted"].as_u64() == Some(i.saturating_sub(19))
        });
    }
    assert_eq!(
        curl(&server.url("/"), &[]).status,
        200,
        "a newcomer gets in"
    );
    let oldest = read_to_close(&mut held[0], Duration::from_secs(5));
    assert_eq!(oldest, Some(Vec::new()), "the oldest idle one gave way");
    let newest = read_to_close(&mut held[29], Duration::from_millis(500));
    assert_eq!(newest, None, "the newest is still open");
}

/// HTTP/2 clients asking for an archived download a hundred times on each connection, and
/// granting no window to take any of it: the server keeps only a bounded number of archived
/// files open (here a quarter of its descriptor reserve), answers the rest 503 with
/// `Retry-After`, and keeps the descriptors the operators' listener and other visitors need.
#[test]
fn http2_streams_asking_for_archived_files_cannot_take_every_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    // 1,200 descriptors: 300 kept from the public listener, 75 of them for archived files,
    // 4 of those for each address.
    let server = Server::start_with_open_files(&dir.path().join("d"), &[], Some(1200));
    let real = std::fs::read(real_fixture("20210601_1852_PREP_CAMP.zip")).unwrap();
    drop_file(&server.entrada(), "20210601_1852_PREP_CAMP.zip", &real);
    server.wait_corte("20210601_1852");
    let zip = "/datos/20210601_1852_PREP_CAMP.zip";
    // One address: three connections with an initial window of 0, each opening 100 streams
    // for the zip, as a client reconnecting each time `send_timeout` cuts it would.
    let mut greedy: Vec<TcpStream> = (0..3)
        .map(|_| h2_zero_window_downloads("127.0.0.1", server.port, zip, 100))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let status = curl(&server.admin("/status"), &[]);
    assert_eq!(status.status, 200, "the admin listener must still answer");
    assert_eq!(curl(&server.url("/datos/"), &[]).status, 200);
    let busy = curl(&server.url(zip), &[]);
    assert_eq!(busy.status, 503, "that address is sent all it may be");
    assert_eq!(busy.header("retry-after"), Some("5"));
    assert_eq!(busy.header("cache-control"), Some("no-store"));
    let other = curl(&server.url(zip), &["--interface", "127.0.0.2"]);
    assert_eq!(
        other.status, 200,
        "one address holding downloads it never takes leaves another visitor theirs"
    );
    assert!(other.body == real);
    // Nineteen more addresses, 4 each: every archived file allowed is being sent.
    greedy.extend(
        (3..22).map(|i| h2_zero_window_downloads(&format!("127.0.0.{i}"), server.port, zip, 10)),
    );
    std::thread::sleep(Duration::from_secs(2));
    let busy = curl(&server.url(zip), &["--interface", "127.0.0.30"]);
    assert_eq!(
        busy.status, 503,
        "every archived file allowed is being sent"
    );
    assert_eq!(curl(&server.admin("/status"), &[]).status, 200);
    // Once those clients leave, the downloads are served again.
    drop(greedy);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = curl(&server.url(zip), &[]);
        if r.status == 200 {
            assert!(r.body == real);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the clients left",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cleartext HTTP/2 connection from the loopback address `source` granting an initial
/// window of 0 and asking for `path` on `streams` streams at once, left open unread.
fn h2_zero_window_downloads(source: &str, port: u16, path: &str, streams: u32) -> TcpStream {
    let mut s = connect_from(source, port);
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    for i in 0..streams {
        hello.extend(h2_frame(0x1, 0x4 | 0x1, 2 * i + 1, &h2_get(path)));
    }
    s.write_all(&hello).unwrap();
    s
}

/// Opens a cleartext HTTP/2 connection granting an initial window of 0, asks for `path` on
/// `streams` streams at once, and reads until each has its answer's HEADERS: how many ended
/// there (END_STREAM: an answer without a body, which needs no window) and how many wait
/// for a window to send their body. The connection is returned open.
fn h2_heads_without_window(server: &Server, path: &str, streams: u32) -> (usize, usize, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    for i in 0..streams {
        hello.extend(h2_frame(0x1, 0x4 | 0x1, 2 * i + 1, &h2_get(path)));
    }
    s.write_all(&hello).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut ended, mut waiting) = (0, 0);
    let (mut got, mut at) = (Vec::new(), 0);
    let mut chunk = [0u8; 16 * 1024];
    while ended + waiting < usize::try_from(streams).unwrap() {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed after {ended} ended and {waiting} waiting answers"
        );
        got.extend_from_slice(&chunk[..n]);
        let (frames, used) = h2_frames(&got[at..]);
        for f in frames.iter().filter(|f| f.kind == 0x1) {
            if f.flags & 0x1 != 0 {
                ended += 1;
            } else {
                waiting += 1;
            }
        }
        at += used;
    }
    (ended, waiting, s)
}

/// An HTTP/2 client that opens many streams on each of its connections and takes none of the
/// answers (a window of 0) holds an answer in memory for each until `send_timeout`. Requests
/// in flight beside each connection's first are held to `max_connections_per_address` from
/// one address (as many as HTTP/1.1 connections could hold): past that a request is answered
/// 503 at once, without a body, which needs no window; the refusal is journaled, the places
/// come back when the client leaves, and other visitors are served meanwhile.
#[test]
fn http2_answers_held_without_a_window_are_bounded_by_the_connection_caps() {
    let (_dir, server) = serving(
        &["--max-connections-per-address", "4"],
        &[("a.txt", b"hola")],
    );
    // One connection: its first request, and four beside it, wait for a window.
    let (ended, waiting, first) = h2_heads_without_window(&server, "/a.txt", 20);
    assert_eq!(
        (ended, waiting),
        (15, 5),
        "503 without a body past the four beside the first"
    );
    // A second connection of the same address: its first request is not counted, and there
    // is no room left beside it.
    let (ended, waiting, second) = h2_heads_without_window(&server, "/a.txt", 3);
    assert_eq!((ended, waiting), (2, 1));
    let journaled = journaled_protocol_refusals(&server);
    assert_eq!(
        journaled.len(),
        1,
        "once a minute per address: {journaled:?}"
    );
    assert_eq!(journaled[0]["error"], "requests_in_flight");
    assert_eq!(journaled[0]["address"], "127.0.0.1");
    let warning = journaled[0]["warning"].as_str().unwrap();
    assert!(warning.contains("answered 503"), "{warning}");
    // Meanwhile a visitor of another address is served, over either protocol.
    let other = |args: &[&str]| {
        let mut a = vec!["--interface", "127.0.0.2"];
        a.extend_from_slice(args);
        curl(&server.url("/a.txt"), &a)
    };
    assert_eq!(other(&[]).status, 200);
    assert_eq!(other(&["--http2-prior-knowledge"]).status, 200);
    // Once the client leaves, its places come back.
    drop((first, second));
    server.wait_status("the slots back", |s| open_connections(s) == 0);
    let (ended, waiting, _again) = h2_heads_without_window(&server, "/a.txt", 5);
    assert_eq!((ended, waiting), (0, 5));
}

#[test]
fn a_connection_with_a_response_in_flight_is_never_evicted() {
    let big = corpus::noise(BIG);
    let (_dir, server) = serving(
        &["--max-connections", "2"],
        &[("grande.bin", big.as_slice())],
    );
    // Two downloads whose readers are not reading yet: their writes are blocked.
    let mut downloads: Vec<TcpStream> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|from| {
            let mut s = connect_from(from, server.port);
            send_get(&mut s, "/grande.bin").unwrap();
            s
        })
        .collect();
    server.wait_status("two downloads", |s| open_connections(s) == 2);
    downloads.iter().for_each(wait_answer_begins);
    let mut third = connect_from("127.0.0.4", server.port);
    send_get(&mut third, "/").unwrap();
    let got = read_to_close(&mut third, Duration::from_secs(5)).expect("refused at once");
    assert!(got.is_empty(), "nothing is answered over the cap");
    let s = server.status();
    assert_eq!(s["connections_evicted"], 0, "{s:#}");
    assert!(s["connections_refused"].as_u64().unwrap_or(0) >= 1, "{s:#}");
    for d in &mut downloads {
        let (status, body) = read_response(d).expect("the whole download");
        assert_eq!(status, 200);
        assert!(body == big, "the download is complete and intact");
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_after_the_send_timeout_and_a_slow_one_is_not() {
    open_files_at_least(4096);
    let big = corpus::noise(BIG);
    // Two seconds: the slow reader below must not be cut when the machine is busy with
    // other tests and its thread is scheduled late.
    let (_dir, server) = serving(&["--send-timeout", "2s"], &[("grande.bin", big.as_slice())]);
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            send_get(&mut s, "/grande.bin").unwrap();
            s
        })
        .collect();
    // A slow reader: 256 KiB every 100 ms, about five seconds for the whole file.
    let slow = {
        let port = server.port;
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /grande.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    server.wait_status("the stalled downloads cut", |s| open_connections(s) <= 1);
    let took = started.elapsed();
    // Uncut, they would stay open for ever; the upper bound leaves room for the 200
    // connections' set-up and a machine busy with the other hostile tests beside this one.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "cut after {took:?}, with a send timeout of 2 s"
    );
    let got = slow.join().unwrap();
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got[body_at..] == big[..], "the slow download is whole");
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the slow download outlived the send timeout"
    );
    for s in &mut stalled {
        let got = read_to_close(s, Duration::from_secs(5)).expect("closed by the server");
        assert!(got.len() < BIG, "a stalled download was cut");
    }
    // Their slots came back.
    assert_eq!(curl(&server.url("/json/main.json"), &[]).status, 200);
    server.wait_status("every slot back", |s| open_connections(s) == 0);
}

#[test]
fn an_http2_client_over_tls_that_stops_reading_is_cut_after_the_send_timeout() {
    let big = corpus::noise(BIG);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &["--send-timeout", "1s"]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[("grande.bin", big.as_slice())]),
    );
    server.wait_corte("20240602_2000");
    let started = Instant::now();
    // HTTP/2 over TLS by ALPN; its output is never read, so once the pipe is full it stops
    // reading the socket: the server's writes (held back and sent together over HTTP/2)
    // block with the file unsent.
    let mut client = h2_over_tls(&server);
    // The preface, windows open wide (so that only the socket holds the server back), and
    // GET /grande.bin over https.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    hello.extend(h2_frame(
        0x8,
        0,
        0,
        &(0x7fff_ffff_u32 - 65_535).to_be_bytes(),
    ));
    let mut headers = vec![0x82, 0x87, 0x44, 11];
    headers.extend_from_slice(b"/grande.bin");
    headers.extend_from_slice(&[0x41, 9]);
    headers.extend_from_slice(b"localhost");
    hello.extend(h2_frame(0x1, 0x4 | 0x1, 1, &headers));
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(&hello).unwrap();
    stdin.flush().unwrap();
    server.wait_status("the download under way", |s| open_connections(s) == 1);
    server.wait_status("the stalled download cut", |s| open_connections(s) == 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(999) && took < Duration::from_secs(8),
        "cut after {took:?}, with a send timeout of 1 s"
    );
    // What the client had taken: a response to GET /grande.bin had begun, and not all of it.
    drop(stdin);
    let _ = client.kill();
    let out = client.wait_with_output().unwrap().stdout;
    let (mut at, mut headers_seen, mut data) = (0, false, 0usize);
    while let Some(head) = out.get(at..at + 9) {
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match (head[3], stream) {
            (0x1, 1) => headers_seen = true,
            (0x0, 1) => data += len.min(out.len().saturating_sub(at + 9)),
            _ => {}
        }
        at += 9 + len;
    }
    assert!(
        headers_seen,
        "the response began ({} bytes read)",
        out.len()
    );
    assert!(
        data > 0 && data < BIG,
        "part of the file arrived: {data} bytes"
    );
}

/// OpenSSL's `s_client` connected to `server`'s TLS port with HTTP/2 by ALPN: what the test
/// writes to its stdin goes to the server as HTTP/2 frames, and its stdout gives what the
/// server sent.
fn h2_over_tls(server: &Server) -> std::process::Child {
    std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-alpn", "h2", "-connect"])
        .arg(format!("127.0.0.1:{}", server.tls_port()))
        .arg("-CAfile")
        .arg(server.self_signed_cert())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// One HTTP/2 frame: type, flags, stream and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Asks for `path` over cleartext HTTP/2 with an initial stream window of 0, then answers
/// the server's SETTINGS and PINGs, pings it every 200 ms and never opens the window: how
/// long the server took to close the connection, timed from before it opened (so the
/// server's clock, which may start at the connection's last progress, its opening included,
/// can only start later), or `None` if it was still open after 8 s.
fn h2_closed_without_window(server: &Server, path: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    hello.extend(h2_frame(0x1, 0x4 | 0x1, 1, &h2_get(path)));
    s.write_all(&hello).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if started.elapsed() > Duration::from_secs(8) {
            return None;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => {}
        }
        // SETTINGS and PING acknowledged, as a live client does.
        let (frames, used) = h2_frames(&got);
        let acks: Vec<Vec<u8>> = frames
            .iter()
            .filter_map(|f| match (f.kind, f.flags & 1) {
                (0x4, 0) => Some(h2_frame(0x4, 1, 0, &[])),
                (0x6, 0) => Some(h2_frame(0x6, 1, 0, f.payload)),
                _ => None,
            })
            .collect();
        got.drain(..used);
        for ack in acks {
            s.write_all(&ack).unwrap();
        }
        let _ = s.write_all(&h2_frame(0x6, 0, 0, &[7; 8]));
    }
    Some(started.elapsed())
}

/// Whether `took` is a cut after a send timeout of 1 s. The server stamps connections in
/// whole milliseconds (src/http/conn.rs), so its second may end up to a millisecond before
/// ours.
fn cut_after_one_second(took: Duration) -> bool {
    took >= Duration::from_millis(999) && took < Duration::from_secs(4)
}

#[test]
fn an_http2_client_that_grants_no_window_is_cut_after_the_send_timeout() {
    let big = corpus::noise(BIG);
    let (_dir, server) = serving(&["--send-timeout", "1s"], &[("grande.bin", big.as_slice())]);
    let took = h2_closed_without_window(&server, "/grande.bin").expect("still open after 8 s");
    assert!(
        cut_after_one_second(took),
        "cut after {took:?}, with a send timeout of 1 s"
    );
    server.wait_status("the slot back", |s| open_connections(s) == 0);
}

/// A response that fits in one frame (a small file, a 404 page, the gate's page) waits for
/// the window as a large one does: a client that never grants it is cut after the send
/// timeout too, never holding its connection (which no cap can evict, a request being in
/// flight) for ever.
#[test]
fn an_http2_client_that_grants_no_window_for_a_small_answer_is_cut_after_the_send_timeout() {
    let (_dir, server) = serving(&["--send-timeout", "1s"], &[]);
    for path in ["/json/main.json", "/no-existe"] {
        let took = h2_closed_without_window(&server, path)
            .unwrap_or_else(|| panic!("{path}: still open after 8 s"));
        assert!(
            cut_after_one_second(took),
            "{path}: cut after {took:?}, with a send timeout of 1 s"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let embargoed = Server::start(
        &dir.path().join("d"),
        &[
            "--publish-start",
            "2099-06-02T20:00:00-06:00",
            "--publish-end",
            "",
            "--send-timeout",
            "1s",
        ],
    );
    let took = h2_closed_without_window(&embargoed, "/json/main.json")
        .expect("the gate's page: still open after 8 s");
    assert!(
        cut_after_one_second(took),
        "the gate's page: cut after {took:?}, with a send timeout of 1 s"
    );
    server.wait_status("the slots back", |s| open_connections(s) == 0);
}

/// Cleartext HTTP/2 with prior knowledge: the preface and empty SETTINGS.
fn h2_preface() -> Vec<u8> {
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[]));
    hello
}

/// HPACK for `GET path` on `localhost` over http (`:method` and `:scheme` indexed, `:path` and
/// `:authority` literals).
fn h2_get(path: &str) -> Vec<u8> {
    h2_get_at(path, "localhost")
}

/// [`h2_get`] naming `authority`.
fn h2_get_at(path: &str, authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, u8::try_from(path.len()).unwrap()];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, u8::try_from(authority.len()).unwrap()]);
    block.extend_from_slice(authority.as_bytes());
    block
}

/// HPACK for a header field `name: value`, literal and not indexed.
fn h2_literal(name: &str, value: &str) -> Vec<u8> {
    let mut field = vec![0x00, u8::try_from(name.len()).unwrap()];
    field.extend_from_slice(name.as_bytes());
    field.push(u8::try_from(value.len()).unwrap());
    field.extend_from_slice(value.as_bytes());
    field
}

/// The status of one HTTP/2 `GET /` naming `authority`, read from the first byte of the
/// answer's header block (the server indexes `:status` in HPACK's static table: 0x88 is 200,
/// 0x8c is 400).
fn h2_status_at(server: &Server, authority: &str) -> u8 {
    h2_status_of(server, &h2_get_at("/", authority))
}

/// The status of one HTTP/2 request of header `block`, as [`h2_status_at`] reads it.
fn h2_status_of(server: &Server, block: &[u8]) -> u8 {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut hello = h2_preface();
    hello.extend(h2_frame(0x1, 0x4 | 0x1, 1, block));
    s.write_all(&hello).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (frames, _) = h2_frames(&got);
        if let Some(&first) = frames
            .iter()
            .find(|f| f.kind == 0x1)
            .and_then(|f| f.payload.first())
        {
            return first;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed without an answer for {block:?}");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `frames` (ignoring a connection the server has closed), then reads until the server
/// closes it: the error code of the GOAWAY it sent, if any.
fn h2_goaway_after(s: &mut TcpStream, frames: impl Iterator<Item = Vec<u8>>) -> Option<u32> {
    for f in frames {
        if s.write_all(&f).is_err() {
            break;
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    h2_goaway_and_resets(&got).0
}

/// Of the frames a server sent (`got`): the error code of its GOAWAY, if any, and how many
/// RST_STREAM frames it sent.
fn h2_goaway_and_resets(got: &[u8]) -> (Option<u32>, usize) {
    let (mut code, mut resets) = (None, 0);
    for f in h2_frames(got).0 {
        match f.kind {
            0x7 if f.payload.len() >= 8 => {
                code = Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
            }
            0x3 => resets += 1,
            _ => {}
        }
    }
    (code, resets)
}

/// One HTTP/2 frame a server sent.
struct H2Frame<'a> {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &'a [u8],
}

/// The whole frames at the start of `got`, and how many of its bytes they take.
fn h2_frames(got: &[u8]) -> (Vec<H2Frame<'_>>, usize) {
    let (mut frames, mut at) = (Vec::new(), 0);
    while at + 9 <= got.len() {
        let len =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        if at + 9 + len > got.len() {
            break;
        }
        frames.push(H2Frame {
            kind: got[at + 3],
            flags: got[at + 4],
            stream: u32::from_be_bytes(got[at + 5..at + 9].try_into().unwrap()) & !(1 << 31),
            payload: &got[at + 9..at + 9 + len],
        });
        at += 9 + len;
    }
    (frames, at)
}

/// The journal's `http-protocol` warnings, once the first is there.
fn journaled_protocol_refusals(server: &Server) -> Vec<serde_json::Value> {
    let refusals = || {
        events(server, "warning")
            .into_iter()
            .filter(|w| w["detail"]["check"] == "http-protocol")
            .map(|w| w["detail"].clone())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while refusals().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    refusals()
}

/// The HTTP/2 "rapid reset" attack: streams opened and reset at once, thousands a second, so
/// that the server starts work the client never waits for. The client is sent a GOAWAY
/// (ENHANCE_YOUR_CALM) and closed, the refusal is journaled, and others are served.
#[test]
fn an_http2_client_resetting_every_stream_it_opens_is_cut_and_journaled() {
    let (_dir, server) = serving(&[], &[("a.txt", b"hola")]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let get = h2_get("/a.txt");
    let opened_and_reset = (0..5_000u32).map(|i| {
        let stream = 2 * i + 1;
        let mut f = h2_frame(0x1, 0x4 | 0x1, stream, &get);
        f.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM, CANCEL
        f
    });
    let code = h2_goaway_after(
        &mut s,
        std::iter::once(h2_preface()).chain(opened_and_reset),
    );
    assert_eq!(code, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    let journaled = journaled_protocol_refusals(&server);
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    assert_eq!(journaled[0]["protocol"], "HTTP/2");
    assert_eq!(journaled[0]["address"], "127.0.0.1");
    let error = journaled[0]["error"].as_str().unwrap();
    assert!(error.contains("ENHANCE_YOUR_CALM"), "{error}");
    let r = curl(&server.url("/a.txt"), &["--http2-prior-knowledge"]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hola"[..]));
    server.wait_status("the slot back", |s| open_connections(s) == 0);
}

/// The HTTP/2 "MadeYouReset" attack (CVE-2025-8671): streams the client makes the *server*
/// reset, by a request it must refuse (no `:path`) or a DATA frame past the `content-length`
/// its request announced, thousands a connection, over cleartext HTTP/2 and over TLS. The
/// server resets at most 1,024 streams of a connection (hyper's
/// `max_local_error_reset_streams`), then sends a GOAWAY (ENHANCE_YOUR_CALM, or another
/// error) and closes; the refusal is journaled once, and others are served.
#[test]
fn an_http2_client_making_the_server_reset_its_streams_is_cut_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_https(&dir.path().join("d"), &[]);
    drop_file(
        &server.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[("a.txt", b"hola")]),
    );
    server.wait_corte("20240602_2000");
    let mut without_path = vec![0x82, 0x86, 0x41, 9];
    without_path.extend_from_slice(b"localhost");
    let mut announced = h2_get("/a.txt");
    announced.extend(h2_literal("content-length", "0"));
    let flood = |streams: u32, frames: &dyn Fn(u32) -> Vec<u8>| {
        let mut all = h2_preface();
        for i in 0..streams {
            all.extend(frames(2 * i + 1));
        }
        all
    };
    let refused = |stream| h2_frame(0x1, 0x4 | 0x1, stream, &without_path);
    let no_path = flood(5_000, &refused);
    let past_length = flood(5_000, &|stream| {
        let mut f = h2_frame(0x1, 0x4, stream, &announced);
        f.extend(h2_frame(0x0, 0x1, stream, b"x"));
        f
    });
    // A request the server must refuse never reaches hyper's dispatch: past 1,024 resets the
    // GOAWAY says ENHANCE_YOUR_CALM. A DATA frame past its request's length may come after
    // the request was answered (its stream closed), which ends the connection as a
    // PROTOCOL_ERROR instead: either way it is cut, with an error.
    let cut = |what: &str, got: &[u8]| {
        let (code, resets) = h2_goaway_and_resets(got);
        assert!(
            code.is_some_and(|c| c != 0),
            "{what}: GOAWAY with an error: {code:?}"
        );
        assert!(resets <= 1_024, "{what}: {resets} streams reset");
        code
    };
    let in_clear = [
        ("no :path", &no_path, Some(0xb)),
        ("DATA past content-length", &past_length, None),
    ];
    for (what, frames, expected) in in_clear {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let _ = s.write_all(frames);
        let got = read_to_close(&mut s, Duration::from_secs(10)).expect("closed by the server");
        let code = cut(what, &got);
        if expected.is_some() {
            assert_eq!(code, expected, "{what}: GOAWAY with ENHANCE_YOUR_CALM");
        }
    }
    // Over TLS, HTTP/2 by ALPN: one stream past the limit, so that the server has read all
    // that was sent when it closes (a close with bytes unread resets the connection, and
    // openssl may then end before it prints what it received).
    let mut client = h2_over_tls(&server);
    let mut stdin = client.stdin.take().unwrap();
    let _ = stdin.write_all(&flood(1_025, &refused));
    let _ = stdin.flush();
    let mut got = Vec::new();
    client.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    drop(stdin);
    let _ = client.wait();
    assert_eq!(
        cut("over TLS", &got),
        Some(0xb),
        "over TLS: ENHANCE_YOUR_CALM"
    );

    let journaled = journaled_protocol_refusals(&server);
    assert_eq!(
        journaled.len(),
        1,
        "once a minute per address: {journaled:?}"
    );
    assert_eq!(journaled[0]["protocol"], "HTTP/2");
    let error = journaled[0]["error"].as_str().unwrap();
    assert!(error.contains("ENHANCE_YOUR_CALM"), "{error}");
    let r = curl(&server.url("/a.txt"), &["--http2-prior-knowledge"]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hola"[..]));
    server.wait_status("the slots back", |s| open_connections(s) == 0);
}

/// A request head that never ends: HEADERS without END_HEADERS, then CONTINUATION frames of
/// headers with no end. The server stops reading past its header limit, answers with a
/// GOAWAY and closes, instead of collecting the headers; the refusal is journaled.
#[test]
fn an_http2_request_head_continued_without_end_is_cut_and_journaled() {
    let (_dir, server) = serving(&["--max-header-bytes", "8KiB"], &[("a.txt", b"hola")]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Literal header fields without indexing, new name: x-relleno: 100 bytes.
    let mut fields = Vec::new();
    for _ in 0..100 {
        fields.extend_from_slice(&[0x00, 9]);
        fields.extend_from_slice(b"x-relleno");
        fields.push(100);
        fields.extend_from_slice(&[b'r'; 100]);
    }
    let head = std::iter::once(h2_preface())
        .chain(std::iter::once(h2_frame(0x1, 0x1, 1, &h2_get("/a.txt"))))
        .chain((0..10_000).map(|_| h2_frame(0x9, 0, 1, &fields)));
    let code = h2_goaway_after(&mut s, head);
    assert!(
        code.is_some_and(|c| c != 0),
        "GOAWAY with an error: {code:?}"
    );
    let journaled = journaled_protocol_refusals(&server);
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    assert_eq!(journaled[0]["protocol"], "HTTP/2");
    assert_eq!(
        curl(&server.url("/a.txt"), &["--http2-prior-knowledge"]).status,
        200
    );
}

/// An HTTP/2 request head past `max_header_bytes` is answered by h2 itself, on its stream
/// alone: `:status` 431 and no other field (not even `Date`), no GOAWAY, and the connection
/// goes on serving its next request. The README says so, not that the connection is cut.
#[test]
fn an_http2_request_head_past_the_limit_gets_a_bare_431_on_its_stream_alone() {
    let (_dir, server) = serving(&["--max-header-bytes", "8KiB"], &[("a.txt", b"hola")]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // 100 fields of 9 + 100 bytes: 14 KB as HTTP/2 counts a header list, in one frame.
    let mut oversized = h2_get("/a.txt");
    for _ in 0..100 {
        oversized.extend(h2_literal("x-relleno", &"r".repeat(100)));
    }
    let mut hello = h2_preface();
    hello.extend(h2_frame(0x1, 0x4 | 0x1, 1, &oversized));
    hello.extend(h2_frame(0x1, 0x4 | 0x1, 3, &h2_get("/a.txt")));
    s.write_all(&hello).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Each stream's header block and body, until stream 3 has ended.
    let (mut blocks, mut bodies) = (
        std::collections::HashMap::<u32, Vec<u8>>::new(),
        std::collections::HashMap::<u32, Vec<u8>>::new(),
    );
    let (mut got, mut at, mut goaway) = (Vec::new(), 0, None);
    let mut chunk = [0u8; 16 * 1024];
    let mut ended = false;
    while !ended {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {blocks:?} {goaway:?}");
        got.extend_from_slice(&chunk[..n]);
        let (frames, used) = h2_frames(&got[at..]);
        for f in frames {
            match f.kind {
                0x1 => blocks
                    .entry(f.stream)
                    .or_default()
                    .extend_from_slice(f.payload),
                0x0 => bodies
                    .entry(f.stream)
                    .or_default()
                    .extend_from_slice(f.payload),
                0x7 => goaway = Some(f.payload.to_vec()),
                _ => {}
            }
            ended |= f.stream == 3 && f.flags & 0x1 != 0;
        }
        at += used;
    }
    // `:status: 431` and nothing else: the name indexed (`:status` is 8 in HPACK's static
    // table), the value a literal (431 is not in it), Huffman-coded in 3 bytes.
    assert_eq!(
        blocks.get(&1).map(Vec::as_slice),
        Some([0x48, 0x83, 0x69, 0x90, 0xff].as_slice()),
        "{blocks:?}"
    );
    assert!(!bodies.contains_key(&1), "{bodies:?}");
    assert_eq!(
        blocks[&3].first(),
        Some(&0x88),
        "200 on the same connection"
    );
    assert_eq!(bodies.get(&3).map(Vec::as_slice), Some(b"hola".as_slice()));
    assert_eq!(goaway, None);
}

/// GET and HEAD of `path` over `protocol` (curl flags): HEAD gets the same status and
/// `Content-Length` as GET's body, and no body.
fn head_matches_get(server: &Server, path: &str, protocol: &[&str], status: u16) {
    let get = curl(&server.url(path), protocol);
    assert!(get.complete, "GET {path} {protocol:?}");
    assert_eq!(get.status, status, "GET {path} {protocol:?}");
    let mut head_args = protocol.to_vec();
    head_args.push("-I");
    let head = curl(&server.url(path), &head_args);
    assert!(
        head.complete,
        "HEAD {path} {protocol:?}: curl failed (a body after the headers resets the stream)"
    );
    assert_eq!(head.status, status, "HEAD {path} {protocol:?}");
    // With -I, curl's output is the response head; anything after it would be a body.
    assert!(
        head.text().ends_with("\r\n\r\n"),
        "HEAD {path} {protocol:?}: {}",
        head.text()
    );
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str()),
        "HEAD {path} {protocol:?}: Content-Length as GET would send"
    );
}

const HTTP1: &[&str] = &["--http1.1"];
const HTTP2: &[&str] = &["--http2-prior-knowledge"];

#[test]
fn head_never_carries_a_body_over_http1_or_http2() {
    let (_dir, server) = serving(&[], &[("carpeta/index.html", b"<p>carpeta</p>".as_slice())]);
    for protocol in [HTTP1, HTTP2] {
        head_matches_get(&server, "/json/main.json", protocol, 200);
        head_matches_get(&server, "/no-existe", protocol, 404);
        head_matches_get(&server, "/%ff", protocol, 400);
        head_matches_get(&server, "/carpeta", protocol, 301);
    }
    assert!(
        server
            .run(&["notice", "on", "--text", "Suspendido."])
            .status
            .success()
    );
    for protocol in [HTTP1, HTTP2] {
        head_matches_get(&server, "/json/main.json", protocol, 200);
        assert!(
            curl(&server.url("/"), protocol)
                .text()
                .contains("Suspendido.")
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let embargoed = embargoed_server(dir.path());
    for protocol in [HTTP1, HTTP2] {
        head_matches_get(&embargoed, "/", protocol, 503);
    }
}

/// Sends `CONNECT` on a fresh connection; the response as text.
fn connect_method(server: &Server) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(10)).expect("an answer, then a close");
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn connect_and_other_methods_get_405_whatever_the_gate_and_no_result_leaks() {
    let (_dir, server) = serving(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let embargoed = embargoed_server(dir.path());
    drop_file(
        &embargoed.entrada(),
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    embargoed.wait_corte("20240602_2000");
    let check = |server: &Server, gate: &str| {
        let answer = connect_method(server);
        assert!(answer.starts_with("HTTP/1.1 405"), "{gate}: {answer}");
        assert!(
            answer.to_lowercase().contains("allow: get, head, options"),
            "{gate}: {answer}"
        );
        assert!(!answer.contains("20240602_2000"), "{gate}: {answer}");
        for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"] {
            for protocol in [HTTP1, HTTP2] {
                let mut args = protocol.to_vec();
                args.extend(["-X", method]);
                let r = curl(&server.url("/json/main.json"), &args);
                assert_eq!(r.status, 405, "{gate} {method} {protocol:?}");
                assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
                assert!(!r.text().contains("20240602_2000"), "{gate} {method}");
                assert!(r.header("x-prep-corte").is_none(), "{gate} {method}");
            }
        }
    };
    check(&server, "open");
    assert!(
        server
            .run(&["notice", "on", "--text", "Suspendido."])
            .status
            .success()
    );
    check(&server, "notice");
    check(&embargoed, "embargo");
    // The gate still answers every GET and HEAD.
    let notice = curl(&server.url("/json/main.json"), &[]);
    assert_eq!(
        (notice.status, notice.text().contains("Suspendido.")),
        (200, true)
    );
    assert!(!notice.text().contains("20240602_2000"));
    let embargo = curl(&embargoed.url("/json/main.json"), &["-I"]);
    assert_eq!(embargo.status, 503);
    assert!(embargo.header("x-prep-corte").is_none());
}

/// What the simulated site's page asks for when it loads: the page, its style, script and
/// image, `json/main.json` and the detail of the first district.
const PAGE: [&str; 6] = [
    "/index.html",
    "/css/prep.css",
    "/js/prep.js",
    "/img/logo.svg",
    "/json/main.json",
    "/json/PRES/distrito/1.json",
];

#[test]
fn three_hundred_browsers_behind_one_address_are_all_answered() {
    const BROWSERS: usize = 300;
    open_files_at_least(4096);
    let (_dir, server) = serving(
        &[],
        &[
            ("css/prep.css", b"body{margin:0}".as_slice()),
            ("js/prep.js", b"setInterval(actualizar, 2000);".as_slice()),
            (
                "img/logo.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".as_slice(),
            ),
            ("json/PRES/distrito/1.json", b"{\"id\":1}".as_slice()),
        ],
    );
    // Status of every answer, and the requests that got none.
    let answers = Arc::new(Mutex::new(Vec::<u16>::new()));
    let unanswered = Arc::new(Mutex::new(Vec::<String>::new()));
    let all_at_once = Arc::new(Barrier::new(BROWSERS));
    let seed = test_seed();
    let browsers: Vec<_> = (0..BROWSERS)
        .map(|i| {
            let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(i as u64));
            let (answers, unanswered) = (answers.clone(), unanswered.clone());
            let (port, all_at_once) = (server.port, all_at_once.clone());
            std::thread::spawn(move || {
                let record = |what: &str, answer: Option<(u16, Vec<u8>)>| match answer {
                    Some((status, _)) => answers.lock().unwrap().push(status),
                    None => unanswered.lock().unwrap().push(what.to_owned()),
                };
                all_at_once.wait();
                // The page loads over six connections, as a browser opens them.
                let mut connections = Vec::new();
                for path in PAGE {
                    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    record(path, get_on(&mut c, path));
                    connections.push(c);
                }
                // Then it re-reads json/main.json every two seconds, on a kept-alive connection,
                // from a moment of its own: the pace of a page's polling is what is tested.
                std::thread::sleep(Duration::from_millis(rng.u64(0..2000)));
                for _ in 0..3 {
                    record("poll", get_on(&mut connections[4], "/json/main.json"));
                    std::thread::sleep(Duration::from_secs(2));
                }
            })
        })
        .collect();
    for b in browsers {
        b.join().unwrap();
    }
    let unanswered = unanswered.lock().unwrap();
    assert!(
        unanswered.is_empty(),
        "{} requests got no answer: {:?}",
        unanswered.len(),
        &unanswered[..unanswered.len().min(10)]
    );
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), BROWSERS * (PAGE.len() + 3));
    let refused = answers.iter().filter(|s| **s != 200).count();
    assert_eq!(refused, 0, "{refused} answers were not 200");
}

#[test]
fn ipv6_clients_share_one_rate_per_64() {
    let (_dir, server) = serving(
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--rate-per-address",
            "1",
            "--rate-burst",
            "3",
        ],
        &[],
    );
    // Six addresses of one /64, as one home or phone rotates through them.
    let statuses: Vec<u16> = (1..=6)
        .map(|i| {
            let from = format!("X-Forwarded-For: 2001:db8:1:2::{i:x}");
            curl(&server.url("/json/main.json"), &["-H", &from]).status
        })
        .collect();
    assert!(
        statuses.contains(&429),
        "one /64 shares one rate: {statuses:?}"
    );
    let other = curl(
        &server.url("/json/main.json"),
        &["-H", "X-Forwarded-For: 2001:db8:1:3::1"],
    );
    assert_eq!(other.status, 200, "another /64 has its own");
}

/// The status line of the answer to `request`, sent raw on a fresh connection.
fn status_line(server: &Server, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(request).unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(10)).expect("an answer, then a close");
    let got = String::from_utf8_lossy(&got).into_owned();
    got.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn an_http1_request_must_name_one_valid_host() {
    let (_dir, server) = serving(&[], &[]);
    let close = "Connection: close\r\n\r\n";
    for (request, status) in [
        (
            format!("GET / HTTP/1.1\r\nHost: prep.example\r\n{close}"),
            200,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: prep.example:8080\r\n{close}"),
            200,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n{close}"),
            200,
        ),
        (format!("GET / HTTP/1.1\r\nHost:\r\n{close}"), 200),
        (format!("GET / HTTP/1.0\r\n{close}"), 200),
        (format!("GET / HTTP/1.1\r\n{close}"), 400),
        (
            format!("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n{close}"),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: a.example b.example\r\n{close}"),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: user@prep.example\r\n{close}"),
            400,
        ),
        (format!("OPTIONS * HTTP/1.1\r\n{close}"), 400),
    ] {
        let got = status_line(&server, request.as_bytes());
        assert!(
            got.starts_with("HTTP/1.") && got.contains(&format!(" {status} ")),
            "{request:?}: {got}"
        );
    }
    // HTTP/2 names the host in :authority; curl over h2c with prior knowledge still gets in,
    // and user information there is refused as it is in a Host field.
    let out = curl(&server.url("/"), &["--http2-prior-knowledge"]);
    assert_eq!(out.status, 200);
    assert_eq!(h2_status_at(&server, "prep.example"), 0x88);
    assert_eq!(h2_status_at(&server, "user@prep.example"), 0x8c);
    // A `host` field over HTTP/2 is held to the same rules, and must name what `:authority`
    // names when both are sent (RFC 9113 §8.3.1).
    let without_authority = [0x82, 0x86, 0x44, 0x01, b'/'];
    for (hosts, authority, status) in [
        (&["prep.example"][..], None, 0x88),
        (&["prep.example"][..], Some("PREP.example"), 0x88),
        (&["a.example", "b@evil.example"][..], None, 0x8c),
        (&["a.example", "a.example"][..], None, 0x8c),
        (&["user@prep.example"][..], None, 0x8c),
        (&["b.example"][..], Some("a.example"), 0x8c),
    ] {
        let mut block = match authority {
            Some(authority) => h2_get_at("/", authority),
            None => without_authority.to_vec(),
        };
        for host in hosts {
            block.extend(h2_literal("host", host));
        }
        assert_eq!(
            h2_status_of(&server, &block),
            status,
            "host {hosts:?}, :authority {authority:?}"
        );
    }
}

/// A request smuggled in the body of another: the public site never reads a body, so the
/// request that announces one is answered (413, or 405 for another method) and its connection
/// closed, whatever framing it uses; what follows the head is never answered as a request,
/// over HTTP/1.1 or 1.0, however a cache in front would have cut the body.
#[test]
fn a_request_smuggled_in_a_body_is_never_answered() {
    let (_dir, server) = serving(&["--header-timeout", "30s"], &[("a.txt", b"hola")]);
    let smuggled = "GET /a.txt HTTP/1.1\r\nHost: prep.example\r\n\r\n";
    let chunked = format!("0\r\n\r\n{smuggled}");
    for (head, body, status) in [
        (
            "GET /a.txt HTTP/1.1\r\nTransfer-Encoding: chunked",
            format!("5\r\nhello\r\n{chunked}"),
            413,
        ),
        (
            "GET /a.txt HTTP/1.1\r\nTransfer-Encoding: chunked, chunked",
            chunked.clone(),
            413,
        ),
        (
            "GET /a.txt HTTP/1.1\r\nTransfer-Encoding:\tchunked",
            chunked.clone(),
            413,
        ),
        (
            "GET /a.txt HTTP/1.1\r\nTransfer-Encoding: gzip, chunked",
            chunked.clone(),
            413,
        ),
        (
            "GET /a.txt HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5",
            format!("hello{smuggled}"),
            413,
        ),
        (
            "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5",
            format!("hello{smuggled}"),
            413,
        ),
        (
            "POST /a.txt HTTP/1.1\r\nContent-Length: 5",
            format!("hello{smuggled}"),
            405,
        ),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let request = format!("{head}\r\nHost: prep.example\r\n\r\n{body}");
        s.write_all(request.as_bytes()).unwrap();
        // Well within the header timeout: a connection left open would not be closed yet.
        let got = read_to_close(&mut s, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{head:?}: the connection was left open"));
        let got = String::from_utf8_lossy(&got).into_owned();
        assert!(
            got.starts_with("HTTP/1.")
                && got
                    .get(8..)
                    .is_some_and(|rest| rest.starts_with(&format!(" {status} "))),
            "{head:?}: {got}"
        );
        assert_eq!(got.matches("HTTP/1.").count(), 1, "{head:?}: {got}");
        assert!(!got.contains("hola"), "{head:?}: {got}");
    }
    // A request without a body keeps its connection: the next one is answered.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let two =
        format!("GET /a.txt HTTP/1.1\r\nHost: prep.example\r\nContent-Length: 0\r\n\r\n{smuggled}");
    s.write_all(two.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.windows(4).filter(|w| *w == b"hola").count() < 2 {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn header_bytes_that_are_not_utf8_are_logged_as_they_came_never_merged() {
    let (_dir, server) = serving(&[], &[]);
    // Two agents and two referers that a lossy decoding would write alike.
    for (agent, referer) in [
        (&b"bot\xff\xfe"[..], &b"http://a.example/\xc3("[..]),
        (&b"bot\xfe\xff"[..], &b"http://a.example/\xe2\x28\xa1"[..]),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let mut request = b"GET / HTTP/1.1\r\nHost: prep.example\r\nUser-Agent: ".to_vec();
        request.extend_from_slice(agent);
        request.extend_from_slice(b"\r\nReferer: ");
        request.extend_from_slice(referer);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        s.write_all(&request).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"));
    }
    let text = server.access_log_with(2);
    assert!(
        text.contains(r#""http://a.example/\xC3(" "bot\xFF\xFE""#),
        "{text}"
    );
    assert!(
        text.contains(r#""http://a.example/\xE2(\xA1" "bot\xFE\xFF""#),
        "{text}"
    );
}

/// A visitor's long headers and target are cut in the access log, each field at 1 KiB marked
/// `...`: over HTTP/2 a header sent once is named again with one byte, so lines as long as the
/// headers would let a visitor write kilobytes of log for each byte it sends. A page the
/// server makes itself (a 404) is logged with the bytes it sent.
#[test]
fn long_headers_are_cut_in_the_access_log_and_pages_are_logged_with_their_size() {
    let (_dir, server) = serving(&[], &[]);
    let target = format!("/json/main.json?{}", "q".repeat(3000));
    let referer = format!("http://a.example/{}", "r".repeat(3000));
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: prep.example\r\nReferer: {referer}\r\nUser-Agent: "
    )
    .into_bytes();
    request.extend_from_slice(&[0xFF; 4000]);
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(&request).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let missing = curl(&server.url("/no-existe"), &[]);
    assert_eq!(missing.status, 404);
    assert!(!missing.body.is_empty());

    let text = server.access_log_with(2);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let cut_target = &target[..1024];
    let cut_referer = &referer[..1024];
    let cut_agent = "\\xFF".repeat(1024);
    assert!(
        lines[0].contains(&format!("\"GET {cut_target}... HTTP/1.1\" 200 ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(&format!("\"{cut_referer}...\" \"{cut_agent}...\"")),
        "{}",
        lines[0]
    );
    assert!(lines[0].len() < 7 * 1024, "{} bytes", lines[0].len());
    assert!(
        lines[1].contains(&format!(
            "\"GET /no-existe HTTP/1.1\" 404 {} ",
            missing.body.len()
        )),
        "{}",
        lines[1]
    );
}

/// Floods the server over cleartext HTTP/2 with `frame` and sends no request, reading the
/// answers only now and then (nothing for a second, then all of them for 200 ms, well within
/// the send timeout), so that the server's writes keep blocking and going through: how long
/// the server took to close the connection, or `None` if it was still open after 10 s.
fn h2_flood_read_slowly(server: &Server, frame: &[u8]) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let flood = {
        let mut w = s.try_clone().unwrap();
        let batch: Vec<u8> = frame.repeat(1_000);
        std::thread::spawn(move || {
            if w.write_all(&h2_preface()).is_err() {
                return;
            }
            // Until the server closes the connection (or 20 s, should it never).
            while started.elapsed() < Duration::from_secs(20) && w.write_all(&batch).is_ok() {}
        })
    };
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let closed = 'open: loop {
        if started.elapsed() > Duration::from_secs(10) {
            break None;
        }
        // Nothing read for a second (the server's writes block), then everything the
        // server sends for 200 ms (they go through).
        std::thread::sleep(Duration::from_secs(1));
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            match s.read(&mut chunk) {
                Ok(0) => break 'open Some(started.elapsed()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    break 'open Some(started.elapsed());
                }
                Ok(_) | Err(_) => {}
            }
        }
    };
    let _ = s.shutdown(std::net::Shutdown::Both);
    flood.join().unwrap();
    closed
}

/// A client that sends no request but floods PING or SETTINGS frames, and reads the
/// server's acknowledgements slowly enough that its writes block, then go through, then
/// block again: the connection is cut `header_timeout` after it opened, as a silent one is,
/// never held (with its descriptor and buffers) for as long as the client keeps it up.
#[test]
fn an_http2_client_flooding_pings_or_settings_without_a_request_is_cut_after_the_header_timeout() {
    let (_dir, server) = serving(&["--header-timeout", "1s", "--send-timeout", "3s"], &[]);
    for (what, frame) in [
        ("PING", h2_frame(0x6, 0, 0, &[7; 8])),
        ("SETTINGS", h2_frame(0x4, 0, 0, &[])),
    ] {
        let took = h2_flood_read_slowly(&server, &frame)
            .unwrap_or_else(|| panic!("{what} flood: still open after 10 s"));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2_900),
            "{what} flood: cut after {took:?}, with a header timeout of 1 s (send timeout 3 s)"
        );
    }
    server.wait_status("the slots back", |s| open_connections(s) == 0);
    assert_eq!(
        curl(&server.url("/json/main.json"), &["--http2-prior-knowledge"]).status,
        200
    );
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").expect("the server's VmRSS")
}

/// An HTTP/2 client that grants every window and never reads its socket: each archived
/// download it asks for holds in the server only the rest of the chunk being sent, the next
/// and one read ahead, not the 400 KiB an HTTP/2 stream takes in by default nor a read
/// buffer kept with the file, so the archived files that may be sent at once hold a
/// bounded amount of memory until `send_timeout` cuts them.
#[test]
fn http2_downloads_a_client_never_reads_hold_a_few_frames_each() {
    // 4,096 descriptors or more: at least 256 archived files may be sent at once.
    open_files_at_least(4096);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let noise = corpus::noise(4 * 1024 * 1024);
    let inner = zip_bytes(&[
        (
            "CAMP_GOB_2021.csv",
            b"GUBERNATURA\n01/06/2021 19:22 (UTC-5)\n".as_slice(),
        ),
        ("relleno.bin", noise.as_slice()),
    ]);
    let package = zip_bytes(&[("20210601_1922_PREP_GOB_CAMP.zip", inner.as_slice())]);
    drop_file(&server.entrada(), "20210601_1922_PREP_CAMP.zip", &package);
    server.wait_corte("20210601_1922");
    let zip = "/datos/20210601_1922_PREP_CAMP.zip";
    assert!(curl(&server.url(zip), &[]).body == package);
    let pid = server.pid().unwrap();
    let before = rss_kib(pid);
    // Twenty addresses, each a connection of 10 streams for the 4 MiB zip (within an
    // address's share of the archived files), every window wide open.
    const STREAMS: u64 = 200;
    let greedy: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{}", 10 + i), server.port);
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend(h2_frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
            hello.extend(h2_frame(
                0x8,
                0,
                0,
                &(0x7fff_ffff_u32 - 65_535).to_be_bytes(),
            ));
            for i in 0..u32::try_from(STREAMS / 20).unwrap() {
                hello.extend(h2_frame(0x1, 0x4 | 0x1, 2 * i + 1, &h2_get(zip)));
            }
            s.write_all(&hello).unwrap();
            s
        })
        .collect();
    let mut held = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        held = held.max(rss_kib(pid).saturating_sub(before));
    }
    let per_stream = held / STREAMS;
    // 144 KiB of the file at most (src/http/mod.rs, `ARCHIVE_CHUNK`) and what a stream
    // costs; h2's default send buffer alone would add 400 KiB.
    assert!(
        per_stream < 192,
        "{per_stream} KiB held per download not taken ({held} KiB for {STREAMS})"
    );
    let other = curl(
        &server.url("/datos/"),
        &["--interface", "127.0.0.2", "--http2-prior-knowledge"],
    );
    assert_eq!(other.status, 200, "another visitor is served meanwhile");
    drop(greedy);
    server.wait_status("the slots back", |s| open_connections(s) == 0);
}
