//! A real ACME server for the tests: Let's Encrypt's Pebble (Debian package `pebble`), with
//! `pebble-challtestsrv` answering its DNS queries (every name is 127.0.0.1), on loopback
//! ports of its own, validating challenges on the ports the test gives.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ReservedPort, curl, installed, pki};

/// A running Pebble and its DNS server, stopped when dropped.
pub struct Pebble {
    dir: PathBuf,
    pebble: Option<Child>,
    dns: Option<Child>,
    /// `https://127.0.0.1:<port>/dir`.
    pub directory: String,
    /// The authority of Pebble's own HTTPS (for `acme_directory_ca`).
    pub ca: PathBuf,
    management: String,
    _ports: [ReservedPort; 3],
}

/// Whether Pebble is installed ([`installed`]): on CI its absence fails the test.
pub fn pebble_installed() -> bool {
    // Pebble has no version flag, and `-h` exits 2: that it runs at all is the test.
    Command::new("pebble").arg("-h").output().is_ok() || installed(&["pebble", "-h"], "pebble")
}

impl Pebble {
    /// Starts Pebble in `dir` validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port` of 127.0.0.1, issuing certificates valid `validity_seconds`; waits until
    /// its directory answers.
    pub fn start(dir: &Path, http_port: u16, tls_port: u16, validity_seconds: u64) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        let pki = pki();
        let ca = dir.join("pebble-ca.pem");
        let (cert, key) = (dir.join("pebble-cert.pem"), dir.join("pebble-key.pem"));
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        std::fs::write(&cert, &pki.server_pem.0).unwrap();
        std::fs::write(&key, &pki.server_pem.1).unwrap();
        // A UDP port for the DNS server, free a moment ago.
        let dns_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ports = [
            ReservedPort::hold(),
            ReservedPort::hold(),
            ReservedPort::hold(),
        ];
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap()
        };
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &ports[2].addr()])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.log"))
            .spawn()
            .expect("pebble-challtestsrv (apt-get install -y pebble)");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": ports[0].addr(),
                "managementListenAddress": ports[1].addr(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_seconds,
            }
        });
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Pebble {
            dir: dir.to_owned(),
            pebble: None,
            dns: Some(dns),
            directory: format!("https://{}/dir", ports[0].addr()),
            ca,
            management: format!("https://{}", ports[1].addr()),
            _ports: ports,
        };
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.log"))
            .spawn()
            .expect("pebble (apt-get install -y pebble)");
        pebble.pebble = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while curl(
            &pebble.directory,
            &["--cacert", pebble.ca.to_str().unwrap()],
        )
        .status
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "Pebble did not start: {}",
                pebble.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pebble
    }

    /// Pebble's issuing root (its management interface's `/roots/0`), written to a file for
    /// `curl --cacert`.
    pub fn root(&self) -> PathBuf {
        let r = curl(
            &format!("{}/roots/0", self.management),
            &["--cacert", self.ca.to_str().unwrap()],
        );
        assert_eq!(r.status, 200, "Pebble's root: {}", self.log());
        assert!(r.text().contains("BEGIN CERTIFICATE"), "{}", r.text());
        let path = self.dir.join("pebble-root.pem");
        std::fs::write(&path, &r.body).unwrap();
        path
    }

    /// What Pebble logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// Stops Pebble and its DNS server.
    pub fn stop(&mut self) {
        for child in [self.pebble.take(), self.dns.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}
