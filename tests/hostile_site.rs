//! `difusor check` against a hostile site, a python3 server on loopback: a gzip bomb for
//! `main.json`, a body that trickles a byte every half second, a redirect and a header that
//! lies about the corte. The check ends within its timeouts, reads no more than it needs, and
//! names each file's fault.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The hostile site: every answer is one of the faults this module tests.
const SERVER: &str = r#"
import gzip, http.server, sys, time
bomb = gzip.compress(b"\0" * (256 << 20), 9)
class Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        if self.path == "/json/main.json":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(bomb)))
            self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
            self.send_header("X-PREP-Corte", "no es un corte")
            self.end_headers()
            self.wfile.write(bomb)
        elif self.path == "/index.html":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        elif self.path == "/css/a.css":
            self.send_response(301)
            self.send_header("Location", "/otra/a.css")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The hostile site, killed when dropped.
struct Hostile {
    child: Child,
    port: u16,
}

impl Hostile {
    fn start() -> Hostile {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        Hostile { child, port }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_bomb_a_trickle_a_redirect_and_a_lying_header_are_each_named_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("20240602_2000_PREP.zip");
    std::fs::write(
        &package,
        site_package("20240602_2000", &[("css/a.css", b"body{}")]),
    )
    .unwrap();
    let site = Hostile::start();
    let started = Instant::now();
    let out = output_within(
        difusor()
            .args(["check", &format!("http://127.0.0.1:{}/", site.port)])
            .args(["--json", "--timeout", "2s", "--package"])
            .arg(&package),
        Duration::from_secs(30),
    )
    .expect("the check ends within its timeouts");
    let took = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let file = |path: &str| {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {report:#}"))
            .clone()
    };
    // The bomb: decoded only to what can still be compared, called longer, no digest.
    let main = file("json/main.json");
    assert_eq!(main["result"], "different", "{main}");
    assert_eq!(main["encoding"], "gzip");
    assert_eq!(main["first_difference"], 0);
    assert!(main["served_sha256"].is_null(), "{main}");
    // The trickle: no complete answer within the timeout.
    let index = file("index.html");
    assert_eq!(index["result"], "error", "{index}");
    assert!(
        index["error"].as_str().unwrap().contains("timeout"),
        "{index}"
    );
    // The redirect is not followed: the file is not served at its address.
    let css = file("css/a.css");
    assert_eq!(
        (&css["result"], &css["status"]),
        (&"missing".into(), &301.into())
    );
    // A header that is no corte is not believed; nothing else says which corte it is.
    assert!(report["served_corte"].is_null(), "{report:#}");
    let findings = report["findings"].to_string();
    for needle in ["json/main.json", "index.html", "css/a.css", "301"] {
        assert!(findings.contains(needle), "{needle} in {findings}");
    }
}
