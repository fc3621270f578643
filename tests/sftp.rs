//! The embedded SFTP server with Debian's OpenSSH clients (`sftp`, `scp`, `ssh`): uploads with
//! the right key go live; everything else is refused and changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

/// A server with SFTP on a port of its choosing, and a key pair allowed to upload.
pub(crate) struct Sftp {
    pub(crate) server: Server,
    pub(crate) port: u16,
    pub(crate) key: PathBuf,
    pub(crate) dir: PathBuf,
}

pub(crate) fn start(tmp: &Path, extra: &[&str]) -> Sftp {
    start_with_keys(tmp, &[], extra)
}

/// Like [`start`], also authorizing the public keys `more` (`<key>.pub` files).
fn start_with_keys(tmp: &Path, more: &[&Path], extra: &[&str]) -> Sftp {
    let key = tmp.join("id_ed25519");
    ssh_keygen(&key);
    let authorized = tmp.join("authorized_keys");
    let mut lines = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    for k in more {
        lines.push_str(&std::fs::read_to_string(k).unwrap());
    }
    std::fs::write(&authorized, lines).unwrap();
    let mut flags = vec![
        "--sftp-listen",
        "127.0.0.1:0",
        "--sftp-authorized-keys",
        authorized.to_str().unwrap(),
    ];
    flags.extend_from_slice(extra);
    let server = Server::start(&tmp.join("data"), &flags);
    Sftp {
        port: server.sftp_port(),
        server,
        key,
        dir: tmp.to_owned(),
    }
}

fn ssh_options(cmd: &mut Command, key: &Path) {
    cmd.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
    ])
    .arg(key)
    .stdin(Stdio::null());
}

impl Sftp {
    /// Runs `sftp -b` with `batch` (one command a line) and extra options.
    fn batch_with(&self, batch: &str, key: &Path, extra: &[&str]) -> Output {
        let file = self.dir.join(format!("batch-{}", unique()));
        std::fs::write(&file, batch).unwrap();
        let mut cmd = Command::new("sftp");
        ssh_options(&mut cmd, key);
        cmd.args(extra)
            .arg("-b")
            .arg(&file)
            .arg("-P")
            .arg(self.port.to_string())
            .arg("instituto@127.0.0.1");
        cmd.output().expect("sftp")
    }

    fn batch(&self, batch: &str) -> Output {
        self.batch_with(batch, &self.key, &[])
    }

    /// Uploads `pkg` with OpenSSH's `sftp` and waits for `corte` to go live.
    pub(crate) fn put_until_live(&self, pkg: &Path, corte: &str) {
        let out = self.batch(&format!("put {}\n", pkg.display()));
        assert!(out.status.success(), "{}", text(&out));
        self.server.wait_corte(corte);
    }

    /// A local file with `bytes`, for uploading.
    pub(crate) fn local(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.dir.join(format!("local-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub(crate) fn ssh(&self, key: &Path, extra: &[&str], remote: &[&str]) -> Output {
        let mut cmd = Command::new("ssh");
        ssh_options(&mut cmd, key);
        cmd.args(extra)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("instituto@127.0.0.1")
            .args(remote);
        cmd.output().expect("ssh")
    }
}

/// The journal's `sftp-session` events once `cond` holds on them (a session is journaled
/// just after its client has gone), or a panic after 20 s.
pub(crate) fn sessions_when(
    server: &Server,
    cond: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sessions = events(server, "sftp-session");
        if cond(&sessions) {
            return sessions;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for sftp-session events: {sessions:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every refusal listed in the journal's `sftp-session` entries so far, each as its entry
/// gives it, once one contains `what`.
pub(crate) fn refusals_with(server: &Server, what: &str) -> Vec<String> {
    let all = |sessions: &[serde_json::Value]| -> Vec<String> {
        sessions
            .iter()
            .flat_map(|e| {
                e["detail"]["refusals"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    };
    all(&sessions_when(server, |s| {
        all(s).iter().any(|r| r.contains(what))
    }))
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Everything under `dir`, recursively, as relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn sftp_and_scp_uploads_go_live_and_are_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let sidecar = s.local(
        "PREP_20240602_2000.zip.sha256",
        format!(
            "{}  PREP_20240602_2000.zip\n",
            sha256_hex(&std::fs::read(&pkg).unwrap())
        )
        .as_bytes(),
    );
    let out = s.batch(&format!(
        "put {}\nput {}\n",
        sidecar.display(),
        pkg.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2000");
    let verified = events(&s.server, "verified");
    assert!(
        verified.iter().any(|e| e.to_string().contains("sidecar")),
        "the sidecar went with its package: {verified:?}"
    );
    // The journal says who sent it: the client's address and its key's fingerprint.
    let fingerprint = ssh_fingerprint(&s.key);
    let received = events(&s.server, "received");
    let origin = received[0]["detail"]["origin"].as_str().unwrap();
    assert!(
        origin.starts_with("127.0.0.1:") && origin.ends_with(&fingerprint),
        "{origin} / {fingerprint}"
    );

    // scp (SFTP since OpenSSH 9.0).
    let pkg2 = s.local(
        "PREP_20240602_2015.zip",
        &site_package("20240602_2015", &[]),
    );
    let mut scp = Command::new("scp");
    ssh_options(&mut scp, &s.key);
    let out = scp
        .arg("-P")
        .arg(s.port.to_string())
        .arg(&pkg2)
        .arg("instituto@127.0.0.1:")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2015");

    // Upload as a hidden name, then rename: delivered at the rename, not before.
    let pkg3 = s.local(
        "PREP_20240602_2030.zip",
        &site_package("20240602_2030", &[]),
    );
    let out = s.batch(&format!(
        "put {} .PREP_20240602_2030.zip.part\nls -la\nrename .PREP_20240602_2030.zip.part PREP_20240602_2030.zip\n",
        pkg3.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(".PREP_20240602_2030.zip.part"),
        "the session sees its own upload: {}",
        text(&out)
    );
    s.server.wait_corte("20240602_2030");

    let sessions = sessions_when(&s.server, |s| s.len() >= 3);
    let files: u64 = sessions
        .iter()
        .map(|e| e["detail"]["file_count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(files, 3, "{sessions:#?}");
    let first = sessions[0]["detail"].clone();
    assert_eq!(
        first["address"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1")
    );
    assert!(
        first["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:"),
        "{first}"
    );
    assert!(first["bytes"].as_u64().unwrap() > 0);
}

/// Uploads of several megabytes (hundreds of SFTP writes, more than the server queues for its
/// disk at once), delivered at the close and at a rename: each is archived byte for byte under
/// the SHA-256 of what was sent, and no upload file is left behind.
#[test]
fn large_uploads_are_archived_byte_for_byte_under_their_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let filler: Vec<u8> = (0..6_000_000).map(|_| fastrand::u8(..)).collect();
    let first = site_package("20240602_2000", &[("datos/relleno.bin", &filler)]);
    let second = site_package("20240602_2015", &[("datos/relleno.bin", &filler[1..])]);
    let out = s.batch(&format!(
        "put {}
put {} .PREP_20240602_2015.zip.part
rename .PREP_20240602_2015.zip.part \
         PREP_20240602_2015.zip
",
        s.local("PREP_20240602_2000.zip", &first).display(),
        s.local("second.zip", &second).display(),
    ));
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2015");
    sessions_when(&s.server, |e| !e.is_empty());

    let received = events(&s.server, "received");
    for bytes in [&first, &second] {
        let sha = sha256_hex(bytes);
        let archived = s.server.data.join("archivo").join(&sha[..2]).join(&sha);
        assert!(
            std::fs::read(&archived).unwrap() == *bytes,
            "{} holds other bytes than were sent",
            archived.display()
        );
        assert!(
            received.iter().any(|e| e["package"] == sha.as_str()),
            "the journal names {sha}: {received:#?}"
        );
    }
    assert_eq!(tree(&s.server.data.join("tmp")), Vec::<String>::new());
    assert_eq!(
        tree(&s.server.data.join("archivo").join("pendientes")),
        Vec::<String>::new()
    );
}

#[test]
fn wrong_key_password_and_other_addresses_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-allow", "127.0.0.1"]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let put = format!("put {}\n", pkg.display());

    let other = tmp.path().join("other_key");
    ssh_keygen(&other);
    let out = s.batch_with(&put, &other, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Permission denied (publickey)"),
        "{}",
        text(&out)
    );

    // A password attempt: the server offers public keys only.
    let out = s.batch_with(
        &put,
        &other,
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Permission denied (publickey)"),
        "{}",
        text(&out)
    );

    // From 127.0.0.2, not allowed: dropped before the handshake.
    let out = s.batch_with(&put, &s.key, &["-o", "BindAddress=127.0.0.2"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("Permission denied"),
        "no authentication was offered: {}",
        text(&out)
    );
    let refused = wait_events(&s.server, "sftp-refused", 1);
    assert!(
        refused.iter().any(|e| e["detail"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.2:")),
        "{refused:?}"
    );
    assert_eq!(s.server.live_corte(), None);
    assert!(tree(&s.server.entrada()).is_empty());
}

#[test]
fn no_shell_no_exec_no_other_subsystem() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let out = s.ssh(&s.key, &[], &["ls", "/"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exec request failed"), "{}", text(&out));
    let out = s.ssh(&s.key, &["-s"], &["netconf"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("subsystem request failed"),
        "{}",
        text(&out)
    );
    let out = s.ssh(&s.key, &["-T"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    refusals_with(&s.server, "exec");
    let refusals = refusals_with(&s.server, "netconf").join("\n");
    assert!(
        refusals.contains("exec") && refusals.contains("netconf"),
        "{refusals}"
    );
}

#[test]
fn escapes_reads_deletes_and_oversize_uploads_fail_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--max-package-bytes", "64KiB"]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&pkg, "20240602_2000");
    let data = s.server.data.clone();
    let before = tree(&data);

    let small = s.local(
        "PREP_20240602_2015.zip",
        &site_package("20240602_2015", &[]),
    );
    let back = tmp.path().join("back");
    // (batch, what the client prints, what the journal's session entry says)
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("put {} ../PREP_20240602_2015.zip", small.display()),
            "Permission denied",
            "`..` is not allowed",
        ),
        (
            format!("put {} /etc/PREP_20240602_2015.zip", small.display()),
            "Permission denied",
            "outside the intake folder",
        ),
        (
            format!(
                "put {} /tmp/x/../../../PREP_20240602_2015.zip",
                small.display()
            ),
            "Permission denied",
            "`..` is not allowed",
        ),
        (
            "symlink /etc/passwd enlace".to_owned(),
            "Permission denied",
            "symbolic links cannot be made",
        ),
        (
            "mkdir sub".to_owned(),
            "Permission denied",
            "folders cannot be made",
        ),
        (
            "rename PREP_20240602_2000.zip ../x.zip".to_owned(),
            "Permission denied",
            "`..` is not allowed",
        ),
        (
            "rename PREP_20240602_2000.zip otro.zip".to_owned(),
            "Permission denied",
            "files handed over cannot be renamed",
        ),
        (
            "rm PREP_20240602_2000.zip".to_owned(),
            "Permission denied",
            "cannot be deleted",
        ),
        (
            format!(
                "put {} .retenido.part\nget .retenido.part {}",
                small.display(),
                back.display()
            ),
            "Permission denied",
            "cannot be read",
        ),
        (
            format!("get PREP_20240602_2000.zip {}", back.display()),
            "not found",
            "",
        ),
        (
            format!("get ../archivo {}", back.display()),
            "not found",
            "",
        ),
    ];
    for (command, client, journal) in &cases {
        let out = s.batch(&format!("{command}\n"));
        assert!(!out.status.success(), "{command} succeeded: {}", text(&out));
        assert!(
            text(&out).contains(client),
            "{command}: expected {client:?} in {}",
            text(&out)
        );
        let refusals = refusals_with(&s.server, journal).join("\n");
        assert!(
            refusals.contains(journal),
            "{command}: expected {journal:?} in {refusals}"
        );
    }
    // Over max_package_bytes: refused at the write, nothing kept.
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = s.local("PREP_20240602_2030.zip", &big);
    let out = s.batch(&format!("put {}\n", big.display()));
    assert!(!out.status.success());
    assert!(text(&out).contains("Failure"), "{}", text(&out));

    assert!(!tmp.path().join("back").exists());
    assert_eq!(s.server.live_corte().as_deref(), Some("20240602_2000"));
    let after: Vec<String> = tree(&data)
        .into_iter()
        .filter(|p| !p.starts_with("bitacora"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|p| !p.starts_with("bitacora"))
        .collect();
    assert_eq!(before, after, "the data folder changed");
    assert!(!Path::new("/etc/PREP_20240602_2015.zip").exists());
    let refusals = refusals_with(&s.server, "larger than the limit").join("\n");
    assert!(
        refusals.contains("symlink") && refusals.contains("larger than the limit"),
        "{refusals}"
    );
}

#[test]
fn the_host_key_is_made_once_private_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(tmp.path(), &[]);
    let path = s.server.data.join("sftp_host_key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let key = std::fs::read(&path).unwrap();
    let fingerprint = |s: &Sftp| {
        let out = Command::new("ssh-keyscan")
            .args(["-t", "ed25519", "-p", &s.port.to_string(), "127.0.0.1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .map(str::to_owned)
    };
    let before = fingerprint(&s);
    assert!(before.is_some());
    s.server.restart();
    assert_eq!(std::fs::read(&path).unwrap(), key, "the host key changed");
    assert_eq!(fingerprint(&s), before);

    // `init` makes it too.
    let dir = tmp.path().join("nuevo");
    let out = difusor()
        .args(["init", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let made = dir.join("sftp_host_key");
    assert_eq!(
        std::fs::metadata(&made).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn five_clients_at_once_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let cortes = [
        "20240602_2000",
        "20240602_2015",
        "20240602_2030",
        "20240602_2045",
        "20240602_2100",
    ];
    let files: Vec<PathBuf> = cortes
        .iter()
        .map(|c| {
            s.local(
                &format!("PREP_{c}.zip"),
                &site_package(c, &[("pad.bin", &vec![7u8; 300_000])]),
            )
        })
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| scope.spawn(|| s.batch(&format!("put {}\n", f.display()))))
            .collect();
        for h in handles {
            let out = h.join().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    });
    s.server.wait_received(5);
    s.server.wait_corte("20240602_2100");
    let sessions = sessions_when(&s.server, |s| s.len() >= 5);
    assert_eq!(sessions.len(), 5, "{sessions:#?}");
}

#[test]
fn an_address_that_keeps_failing_to_log_in_is_banned_even_with_the_right_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            "--sftp-allow",
            "127.0.0.0/8",
            "--sftp-ban-after",
            "2",
            "--sftp-ban-time",
            "1h",
        ],
    );
    let other = tmp.path().join("other_key");
    ssh_keygen(&other);
    for _ in 0..2 {
        let out = s.batch_with("ls\n", &other, &[]);
        assert!(
            text(&out).contains("Permission denied (publickey)"),
            "{}",
            text(&out)
        );
    }
    // The second failure banned 127.0.0.1 (journaled once, after its session).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ban = loop {
        let refused = events(&s.server, "sftp-refused");
        if let Some(e) = refused.iter().find(|e| {
            e["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("banned")
        }) {
            break e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ban journaled: {refused:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        ban["detail"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        ban["detail"]["reason"].as_str().unwrap().contains("1h"),
        "{ban}"
    );

    // Now even the right key is dropped before the handshake, and not journaled again...
    let out = s.batch_with("ls\n", &s.key, &[]);
    assert!(!out.status.success());
    assert!(!text(&out).contains("Permission denied"), "{}", text(&out));
    assert_eq!(
        events(&s.server, "sftp-refused")
            .iter()
            .filter(|e| e["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("banned"))
            .count(),
        1
    );
    // ...while another allowed address still uploads.
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let out = s.batch_with(
        &format!("put {}\n", pkg.display()),
        &s.key,
        &["-o", "BindAddress=127.0.0.2"],
    );
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2000");
}

#[test]
fn a_client_offering_other_keys_first_logs_in_and_is_never_banned() {
    let tmp = tempfile::tempdir().unwrap();
    // Two failed connections would ban: connections that log in in the end are no failure.
    let s = start(tmp.path(), &["--sftp-ban-after", "2"]);
    let others: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let k = tmp.path().join(format!("otra_{i}"));
            ssh_keygen(&k);
            k
        })
        .collect();
    // `-i` several times: OpenSSH offers them in order, the right key last.
    let mut extra: Vec<&str> = vec!["-o", "IdentitiesOnly=yes"];
    for k in &others[1..] {
        extra.extend(["-i", k.to_str().unwrap()]);
    }
    extra.extend(["-i", s.key.to_str().unwrap()]);
    for corte in ["20240602_2000", "20240602_2015", "20240602_2030"] {
        let pkg = s.local(&format!("PREP_{corte}.zip"), &site_package(corte, &[]));
        let out = s.batch_with(&format!("put {}\n", pkg.display()), &others[0], &extra);
        assert!(out.status.success(), "{}", text(&out));
        s.server.wait_corte(corte);
    }
    let sessions = sessions_when(&s.server, |s| s.len() >= 3);
    for e in &sessions {
        assert_eq!(e["detail"]["authenticated"], true, "{e}");
        assert_eq!(e["detail"]["failed_auth"], 3, "{e}");
    }
    let bans: Vec<_> = events(&s.server, "sftp-refused");
    assert!(bans.is_empty(), "{bans:?}");
}

/// Opens `n` TCP connections to `port` from 127.0.0.1 that never send a byte; prints `open`,
/// then, once each is closed by the server or 30 s have passed, how many were closed and
/// when the last one was.
const SILENT_CLIENTS: &str = r#"
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("open", flush=True)
start = time.time()
closed = 0
for s in socks:
    s.settimeout(max(0.1, start + 30 - time.time()))
    try:
        while s.recv(4096):
            pass
        closed += 1
    except (ConnectionResetError, BrokenPipeError):
        closed += 1
    except socket.timeout:
        pass
print(closed, round(time.time() - start, 1), flush=True)
"#;

#[test]
fn silent_connections_keep_no_one_out_and_are_cut_after_the_handshake_time() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            "--sftp-allow",
            "127.0.0.0/8",
            "--sftp-handshake-timeout",
            "6s",
        ],
    );
    let n = 40;
    let mut flood = Command::new("python3")
        .args(["-c", SILENT_CLIENTS, &s.port.to_string(), &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = std::io::BufReader::new(flood.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "open");
    let put = |corte: &str, extra: &[&str]| {
        let pkg = s.local(&format!("PREP_{corte}.zip"), &site_package(corte, &[]));
        let out = s.batch_with(&format!("put {}\n", pkg.display()), &s.key, extra);
        assert!(out.status.success(), "during the flood: {}", text(&out));
        s.server.wait_corte(corte);
    };
    // Another allowed address gets in at once: one address holds few places.
    put("20240602_2000", &["-o", "BindAddress=127.0.0.2"]);
    // The flooding address itself, once its silent connections have had time to shake
    // hands and did not: the oldest gives way.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    put("20240602_2015", &[]);

    let last = lines.next().unwrap().unwrap();
    let _ = flood.wait();
    let mut fields = last.split_whitespace();
    let closed: usize = fields.next().unwrap().parse().unwrap();
    let after: f64 = fields.next().unwrap().parse().unwrap();
    assert_eq!(closed, n, "every silent connection was closed: {last}");
    assert!(
        after < 12.0,
        "closed after {after} s, not at the handshake limit"
    );
    // The first to end, the one that gave way, is journaled; the others, from the same
    // address within the minute, only counted (in the next entry journaled for it).
    let gave_way = |e: &serde_json::Value| {
        e["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("sftp_max_startups"))
    };
    sessions_when(&s.server, |s| s.iter().any(gave_way));
    let log = s.server.log();
    assert_eq!(
        log.matches("SFTP connection ended without logging in")
            .count(),
        1,
        "{log}"
    );
    let refused = events(&s.server, "sftp-refused");
    assert!(
        refused.iter().any(|e| e["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("sftp_max_startups_per_address"))),
        "{refused:?}"
    );
}

/// A client that has offered a key the server accepts and then sends nothing: its key has a
/// passphrase, which it waits for from an askpass program that takes its time.
struct WaitingForPassphrase {
    client: std::process::Child,
    askpass_pid: PathBuf,
}

impl WaitingForPassphrase {
    /// Makes the key in `tmp`, authorizes it to a server started with `extra` and connects.
    fn start(tmp: &Path, extra: &[&str]) -> (Sftp, Self) {
        use std::os::unix::fs::PermissionsExt;
        let locked = tmp.join("con_frase");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "frase-secreta", "-f"])
                .arg(&locked),
        );
        let s = start_with_keys(tmp, &[&locked.with_extension("pub")], extra);
        let askpass = tmp.join("askpass");
        let askpass_pid = tmp.join("askpass.pid");
        std::fs::write(
            &askpass,
            format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 30\n",
                askpass_pid.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
        let client = Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
            ])
            .arg(&locked)
            .args([
                "-p",
                &s.port.to_string(),
                "instituto@127.0.0.1",
                "-s",
                "sftp",
            ])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (
            s,
            Self {
                client,
                askpass_pid,
            },
        )
    }
}

impl Drop for WaitingForPassphrase {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
        if let Ok(pid) = std::fs::read_to_string(&self.askpass_pid) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn a_connection_that_does_not_log_in_in_time_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (s, client) = WaitingForPassphrase::start(tmp.path(), &["--sftp-login-grace-time", "2s"]);
    // The server cuts and journals it while the client still waits for its passphrase.
    let sessions = sessions_when(&s.server, |s| !s.is_empty());
    let cut_after = started.elapsed();
    drop(client);
    let error = sessions[0]["detail"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("sftp_login_grace_time"), "{sessions:#?}");
    assert_eq!(sessions[0]["detail"]["authenticated"], false);
    assert!(
        cut_after < std::time::Duration::from_secs(10),
        "cut after {cut_after:?}"
    );
}

/// A connection silent both ways while it logs in, when `sftp_login_grace_time` is longer
/// than `sftp_idle_timeout`, is cut for its silence, and its entry says so in the words of
/// every other cut: it is the client's doing, not a connection that broke.
#[test]
fn a_connection_silent_while_it_logs_in_is_cut_for_its_silence() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, client) = WaitingForPassphrase::start(
        tmp.path(),
        &["--sftp-login-grace-time", "1m", "--sftp-idle-timeout", "2s"],
    );
    let sessions = sessions_when(&s.server, |s| !s.is_empty());
    drop(client);
    let detail = &sessions[0]["detail"];
    assert_eq!(
        detail["error"],
        "cut: nothing came or went on the connection for over 2s (sftp_idle_timeout)",
        "{detail:#}"
    );
    assert_eq!(detail["fault"], "sender", "{detail:#}");
    assert_eq!(detail["authenticated"], false, "{detail:#}");
}

#[test]
fn names_with_control_or_reordering_characters_are_refused_over_sftp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    for name in [
        ".parte\tuno.part",
        "PREP_20240602_2000\t.zip",
        "PREP_20240602_2000\u{202e}piz.exe.zip",
    ] {
        let out = s.batch(&format!("put {} \"{name}\"\n", pkg.display()));
        assert!(!out.status.success(), "{name:?}: {}", text(&out));
        assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    }
    // Both sessions journal their refusal (each once its client has gone).
    sessions_when(&s.server, |sessions| {
        sessions
            .iter()
            .filter(|e| {
                e["detail"]["refusals"]
                    .to_string()
                    .contains("control characters")
            })
            .count()
            == 3
    });
    assert_eq!(s.server.live_corte(), None);
}

/// The watched folder's rule on names, over SFTP: a name ending in a dot or a space, or too
/// long for its evidence's name to be a file name, is refused at the open, saying why in the
/// session's entry; the longest name with room for its evidence is taken with its sidecar.
#[test]
fn names_a_sender_cannot_reproduce_or_without_room_for_evidence_are_refused_over_sftp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--evidence-sidecar", "required"]);
    let pkg = s.local("paquete.zip", &site_package("20240602_2100", &[]));
    let long_name = |corte: &str, n: usize| {
        let head = format!("{corte}_PREP_SITIO_");
        format!("{head}{}.zip", "x".repeat(n - head.len() - ".zip".len()))
    };
    let too_long = long_name("20240602_2130", 248);
    for name in [
        "20240602_2100_PREP_SITIO.zip.",
        "20240602_2115_PREP_SITIO.zip ",
        &too_long,
        &format!("{too_long}.sha256"),
    ] {
        let out = s.batch(&format!("put {} \"{name}\"\n", pkg.display()));
        assert!(!out.status.success(), "{name:?}: {}", text(&out));
    }
    // Each session is journaled once its client has gone.
    let refused = |sessions: &[serde_json::Value], needle: &str| {
        sessions
            .iter()
            .filter(|e| e["detail"]["refusals"].to_string().contains(needle))
            .count()
    };
    sessions_when(&s.server, |sessions| {
        refused(sessions, "ends in a dot or a space") == 2
            && refused(sessions, "248 bytes long") == 2
            && refused(sessions, ".minisig") == 2
    });
    assert_eq!(s.server.status()["counts"]["received"], 0);

    let longest = long_name("20240602_2145", 247);
    let good = site_package("20240602_2145", &[]);
    let pkg = s.local("paquete.zip", &good);
    let sidecar = s.local(
        "paquete.zip.sha256",
        format!("{}  {longest}\n", sha256_hex(&good)).as_bytes(),
    );
    let out = s.batch(&format!(
        "put {} \"{longest}.sha256\"\nput {} \"{longest}\"\n",
        sidecar.display(),
        pkg.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2145");
}

#[test]
fn a_login_past_the_session_limit_is_told_to_come_back() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-max-sessions", "1"]);
    // One session logged in and holding its place: its SFTP subsystem answers INIT.
    let mut first = s.subsystem();
    let mut stdin = first.stdin.take().unwrap();
    stdin.write_all(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).unwrap(); // SSH_FXP_INIT, version 3
    let mut version = [0u8; 9];
    first
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut version)
        .unwrap();
    assert_eq!(version[4], 2, "SSH_FXP_VERSION");

    let out = s.batch("ls\n");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("too many SFTP sessions"),
        "{}",
        text(&out)
    );
    let refused = wait_events(&s.server, "sftp-refused", 1);
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["reason"] == "too many SFTP sessions (sftp_max_sessions)"),
        "{refused:?}"
    );
    drop(stdin);
    let _ = first.kill();
    let _ = first.wait();
    // Its place is free once the server has seen it go.
    sessions_when(&s.server, |s| s.len() >= 2);
    let out = s.batch("ls\n");
    assert!(out.status.success(), "{}", text(&out));
}

/// OpenSSH's `ssh` or `sftp` with the institute's key, sending a keep-alive every second
/// (`ServerAliveInterval=1`) and asking for nothing more than `args` do; returns once it has
/// logged in, its input held open.
fn kept_alive(s: &Sftp, program: &str, port_flag: &str, args: &[&str]) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new(program)
        .args([
            "-v",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=1",
            "-i",
        ])
        .arg(&s.key)
        .args([port_flag, &s.port.to_string()])
        .args(args)
        .arg("instituto@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect(program);
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("Authenticated to") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{program} did not log in"));
    child
}

/// Clients left open that ask for nothing but send SSH keep-alives (OpenSSH's
/// `ServerAliveInterval`: an `sftp` prompt, an `ssh -N`) are never silent, yet hold their
/// sessions' places. Each is cut after `sftp_idle_timeout` without an SFTP request, journaled
/// with why, and the institute's upload gets in.
#[test]
fn clients_kept_alive_without_sftp_requests_are_cut_and_free_their_places() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &["--sftp-max-sessions", "2", "--sftp-idle-timeout", "3s"],
    );
    let mut prompt = kept_alive(&s, "sftp", "-P", &[]);
    let mut tunnel = kept_alive(&s, "ssh", "-p", &["-N"]);
    let out = s.batch("ls\n");
    assert!(
        text(&out).contains("too many SFTP sessions"),
        "both places are held: {}",
        text(&out)
    );
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let started = std::time::Instant::now();
    loop {
        let out = s.batch(&format!("put {}\n", pkg.display()));
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no place was freed in 30 s; the last upload got: {}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    s.server.wait_corte("20240602_2000");
    let cut = "cut: the client sent no SFTP request for 3s (sftp_idle_timeout)";
    // Both held places, logged in with the key, and both are journaled as cut, with why.
    sessions_when(&s.server, |sessions| {
        sessions
            .iter()
            .filter(|e| {
                e["detail"]["authenticated"] == true
                    && e["detail"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(cut))
            })
            .count()
            == 2
    });
    for child in [&mut prompt, &mut tunnel] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn an_upload_this_server_fails_to_keep_is_a_server_error_not_a_rejection() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let bytes = site_package("20240602_2000", &[]);
    let pkg = s.local("PREP_20240602_2000.zip", &bytes);
    let broken = break_archive_for(&s.server.data, &bytes);

    let out = s.batch(&format!("put {}\n", pkg.display()));
    assert!(!out.status.success(), "{}", text(&out));
    // OpenSSH's client shows only the status code of the failed close, not its message.
    assert!(
        text(&out).contains("close remote: Failure"),
        "{}",
        text(&out)
    );
    let sessions = sessions_when(&s.server, |e| !e.is_empty());
    let file = &sessions[0]["detail"]["files"][0];
    assert_eq!(file["outcome"]["outcome"], "failed", "{file}");
    assert_eq!(file["outcome"]["fault"], "ours", "{file}");
    assert!(events(&s.server, "rejected").is_empty());

    // Repaired: the same upload goes live.
    std::fs::remove_dir(&broken).unwrap();
    s.put_until_live(&pkg, "20240602_2000");
}

/// An upload this server cannot write (its `tmp/` broken, as a damaged disk would leave it)
/// is its own fault, as for every other channel: journaled as an `intake-error`, in the
/// session's entry, and said on `/status`; once repaired, the same upload goes live.
#[test]
fn an_upload_this_server_cannot_write_is_journaled_and_said_on_status() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let bytes = site_package("20240602_2000", &[]);
    let pkg = s.local("PREP_20240602_2000.zip", &bytes);
    let uploads = s.server.data.join("tmp");
    std::fs::remove_dir_all(&uploads).unwrap();
    std::fs::write(&uploads, b"").unwrap();

    let out = s.batch(&format!("put {}\n", pkg.display()));
    assert!(!out.status.success(), "{}", text(&out));
    let errors = wait_events(&s.server, "intake-error", 1);
    let detail = &errors[0]["detail"];
    assert_eq!(detail["channel"], "sftp", "{detail}");
    assert_eq!(detail["fault"], "ours", "{detail}");
    assert_eq!(detail["name"], "PREP_20240602_2000.zip", "{detail}");
    let failing = s.server.status()["intake_failing"].clone();
    assert_eq!(failing["channel"], "sftp", "{failing}");
    let sessions = sessions_when(&s.server, |e| !e.is_empty());
    let file = &sessions[0]["detail"]["files"][0];
    assert_eq!(file["outcome"]["fault"], "ours", "{file}");
    assert!(events(&s.server, "rejected").is_empty());

    // Repaired: the same upload goes live, and /status is clear.
    std::fs::remove_file(&uploads).unwrap();
    std::fs::create_dir(&uploads).unwrap();
    s.put_until_live(&pkg, "20240602_2000");
    assert!(s.server.status()["intake_failing"].is_null());
}

/// Accepts any host key: the raw client below talks only to the server of its test.
pub(crate) struct AnyHost;

impl russh::client::Handler for AnyHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A runtime on the test's own thread, for the russh client.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An SSH connection logged in with the institute's key, by russh's client.
pub(crate) async fn ssh_login(s: &Sftp) -> russh::client::Handle<AnyHost> {
    let key = russh::keys::load_secret_key(&s.key, None).unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut ssh = russh::client::connect(config, ("127.0.0.1", s.port), AnyHost)
        .await
        .unwrap();
    let key = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None);
    let auth = ssh.authenticate_publickey("instituto", key).await.unwrap();
    assert!(auth.success());
    ssh
}

/// An SFTP session of the institute's key with russh's client, which lets a test do what
/// OpenSSH's `sftp` cannot; with its SSH connection, to be kept while the session is used.
pub(crate) async fn sftp_session(
    s: &Sftp,
) -> (
    russh::client::Handle<AnyHost>,
    russh_sftp::client::SftpSession,
) {
    let ssh = ssh_login(s).await;
    let channel = ssh.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
        .await
        .unwrap();
    (ssh, sftp)
}

/// Opens `name` over SFTP and writes one byte at offset `at`, then `PK\x03\x04` at 0, as no
/// ordinary client does (OpenSSH's `sftp` cannot): what the server answered the writes.
fn sparse_upload(s: &Sftp, name: &str, at: u64) -> std::io::Result<()> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    current_thread().block_on(async {
        let (_ssh, sftp) = sftp_session(s).await;
        let mut file = sftp.create(name).await.unwrap();
        file.seek(std::io::SeekFrom::Start(at)).await?;
        file.write_all(b"x").await?;
        file.flush().await?;
        file.seek(std::io::SeekFrom::Start(0)).await?;
        file.write_all(b"PK\x03\x04").await?;
        file.shutdown().await
    })
}

#[test]
fn a_write_far_past_the_end_is_charged_for_the_file_it_grows_not_the_bytes_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-max-session-bytes", "1MiB"]);
    let data = s.server.data.clone();
    let before = tree(&data);

    // One byte sent 200 MiB into the file: refused, as 200 MiB written would be.
    let written = sparse_upload(&s, "20240602_2000_PREP.zip", 200 << 20);
    assert!(written.is_err(), "a 200 MiB hole was accepted");
    let refusals = refusals_with(&s.server, "sftp_max_session_bytes").join("\n");
    assert!(refusals.contains("20240602_2000_PREP.zip"), "{refusals}");
    // Nothing of it kept, rejected or set aside.
    let after: Vec<String> = tree(&data)
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with("journal"))
        .collect();
    assert!(after.is_empty(), "{after:?}");

    // Within the limit a hole is still a file (writes may arrive out of order): handed over,
    // and rejected for what it holds, which the close tells the client.
    let closed = sparse_upload(&s, "20240602_2015_PREP.zip", 1000).unwrap_err();
    assert!(closed.to_string().contains("rejected"), "{closed}");
    s.server
        .wait_status("the rejection", |st| st["counts"]["rejected"] == 1);
}

/// SFTP requests of protocol version 3, written by hand, for a client that sends without
/// waiting for replies.
mod raw {
    fn string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }

    fn packet(kind: u8, id: Option<u32>, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind];
        if let Some(id) = id {
            p.extend_from_slice(&id.to_be_bytes());
        }
        p.extend_from_slice(body);
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&p);
        out
    }

    /// SSH_FXP_INIT, version 3.
    pub fn init() -> Vec<u8> {
        packet(1, None, &3u32.to_be_bytes())
    }

    /// SSH_FXP_OPEN of `name` to write, created and truncated, no attributes.
    pub fn open_write(id: u32, name: &str) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, name.as_bytes());
        body.extend_from_slice(&0x1au32.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        packet(3, Some(id), &body)
    }

    /// SSH_FXP_WRITE of `data` at `offset` through `handle`.
    pub fn write(id: u32, handle: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, handle.as_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
        string(&mut body, data);
        packet(6, Some(id), &body)
    }

    /// SSH_FXP_CLOSE of `handle`.
    pub fn close(id: u32, handle: &str) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, handle.as_bytes());
        packet(4, Some(id), &body)
    }

    /// SSH_FXP_REALPATH of `path`.
    pub fn realpath(id: u32, path: &str) -> Vec<u8> {
        let mut body = Vec::new();
        string(&mut body, path.as_bytes());
        packet(16, Some(id), &body)
    }
}

impl Sftp {
    /// OpenSSH's `ssh -s sftp` logged in with the institute's key, its input and output
    /// piped to the test as raw SFTP packets.
    fn subsystem(&self) -> std::process::Child {
        let mut cmd = Command::new("ssh");
        ssh_options(&mut cmd, &self.key);
        cmd.args([
            "-p",
            &self.port.to_string(),
            "instituto@127.0.0.1",
            "-s",
            "sftp",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh")
    }

    /// OpenSSH's `ssh -s sftp`, sending the bytes of `requests` as they are, its replies
    /// going to a pipe nobody reads; a second later each of `then` apart (so that ssh sends
    /// each in a message of its own); then the end of its input if `end`, else nothing for a
    /// minute.
    fn raw_session(&self, requests: Vec<u8>, then: Vec<Vec<u8>>, end: bool) -> std::process::Child {
        use std::io::Write;
        let mut child = self.subsystem();
        let mut stdin = child.stdin.take().unwrap();
        // The writes wait while the server reads nothing: written apart.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&requests);
            if !then.is_empty() {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            for bytes in then {
                if stdin
                    .write_all(&bytes)
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            if !end {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        });
        child
    }
}

/// A client that sends requests and never reads the replies fills the channel's window; then
/// small messages fill the queue of the subsystem that waits to reply: the server stops
/// reading the connection, and its silence timer with it. It is cut after
/// `sftp_idle_timeout` all the same, and the session's place is free again.
#[test]
fn a_client_that_takes_no_replies_is_cut_and_frees_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &["--sftp-max-sessions", "1", "--sftp-idle-timeout", "2s"],
    );
    // 60,000 requests, each answered by about fifty bytes: more replies than the client's
    // window (2 MiB) and the pipe nobody reads can hold. Then thousands of requests, each in
    // a message of its own.
    let mut requests = raw::init();
    for id in 0..60_000 {
        requests.extend(raw::realpath(id, "/"));
    }
    let then = (0..3_000).map(|id| raw::realpath(id, "/")).collect();
    let mut client = s.raw_session(requests, then, false);
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let error = sessions[0]["detail"]["error"].to_string();
    assert!(
        error.contains("took none of this server's replies for 2s (sftp_idle_timeout)"),
        "{sessions:#?}"
    );
    // The place is free: an upload goes through.
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&pkg, "20240602_2000");
    let _ = client.kill();
    let _ = client.wait();
}

/// A client that sends a request said to be longer than the server takes (here, a megabyte of
/// `0xff` after its INIT: a length of 4 GiB, then more of them) has broken the protocol: it is
/// cut at once and journaled with why, the rest is never read as requests, and the log gets
/// no line for every four bytes it sent.
#[test]
fn a_client_that_breaks_the_sftp_framing_is_cut_and_costs_the_log_no_flood() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let mut requests = raw::init();
    requests.extend(raw::open_write(1, "PREP_20240602_2000.zip"));
    requests.extend(std::iter::repeat_n(0xff, 1 << 20));
    let mut client = s.raw_session(requests, Vec::new(), true);
    let _ = client.wait();
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let log = s.server.log();
    let flood = log.matches("packet length limit exceeded").count();
    assert_eq!(flood, 0, "{flood} log lines for one client's bytes");
    let detail = &sessions[0]["detail"];
    assert_eq!(
        detail["error"],
        "cut: the client broke the SFTP protocol (a request said to be 4294967295 bytes \
         long, over the 262144 bytes this server takes)",
        "{detail:#}"
    );
    assert_eq!(detail["unfinished"][0]["name"], "PREP_20240602_2000.zip");
    assert!(events(&s.server, "received").is_empty());
}

/// A logged-in client that keeps asking for what this server refuses (here OpenSSH's
/// `ssh -S`, asking its ControlMaster's one connection for a command again and again) is cut
/// after a few, with why in its entry, and costs the log a few lines, not one a request.
#[test]
fn a_client_that_keeps_asking_for_refused_requests_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let (mut master, asked) = ask_master_until_cut(&s, |mux| {
        let out = mux
            .args(["instituto@127.0.0.1", "cat /etc/passwd"])
            .output();
        let out = out.expect("ssh");
        assert!(!out.status.success(), "{}", text(&out));
    });
    let detail = cut_master_session(&s.server);
    assert!(asked < 40, "{asked} commands asked and still connected");
    assert!(
        detail["refusals"]
            .to_string()
            .contains("exec \\\"cat /etc/passwd\\\""),
        "{detail:#}"
    );
    let _ = master.kill();
    let _ = master.wait();
}

/// What a logged-in client asks for that the SSH library would refuse by itself counts all
/// the same: OpenSSH's `ssh -S`, asking its ControlMaster's one connection again and again to
/// forward a port from the server (`-O forward -R`) and to reach one through it (`-W`), is
/// cut after a few, each named in its entry.
#[test]
fn a_client_that_keeps_asking_for_forwarding_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let mut turn = 0;
    let (mut master, asked) = ask_master_until_cut(&s, |mux| {
        turn += 1;
        let mux = if turn % 2 == 0 {
            mux.args(["-O", "forward", "-R", "0:127.0.0.1:9"])
        } else {
            mux.args(["-W", "127.0.0.1:9"])
        };
        let out = mux.arg("instituto@127.0.0.1").output().expect("ssh");
        assert!(!out.status.success(), "{}", text(&out));
    });
    assert!(asked < 40, "{asked} forwardings asked and still connected");
    let detail = cut_master_session(&s.server);
    let refusals = detail["refusals"].to_string();
    assert!(
        refusals.contains("forwarding of port 0 on the server")
            && refusals.contains("forwarding to 127.0.0.1:9"),
        "{detail:#}"
    );
    let _ = master.kill();
    let _ = master.wait();
}

/// The environment OpenSSH sends (`SendEnv`) is ignored: a desktop's dozen `LC_*` variables
/// cost an upload nothing. A client sending more than any environment holds (a hundred
/// variables here, as many as it likes with a client of its own) is cut like one asking for
/// what is refused, each past the first 64 named in its entry.
#[test]
fn a_client_sending_its_environment_without_end_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let batch = s.dir.join("batch-put");
    std::fs::write(&batch, format!("put {}\n", pkg.display())).unwrap();
    let mut desktop = Command::new("sftp");
    ssh_options(&mut desktop, &s.key);
    for name in ["LANG", "LC_ADDRESS", "LC_IDENTIFICATION", "LC_MEASUREMENT"]
        .into_iter()
        .chain(["LC_MONETARY", "LC_NAME", "LC_NUMERIC", "LC_PAPER"])
        .chain(["LC_TELEPHONE", "LC_TIME", "LC_CTYPE", "LC_COLLATE"])
    {
        desktop.env(name, "es_MX.UTF-8");
    }
    let out = desktop
        .args(["-o", "SendEnv=LANG LC_*", "-b"])
        .arg(&batch)
        .args(["-P", &s.port.to_string(), "instituto@127.0.0.1"])
        .output()
        .expect("sftp");
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2000");
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    assert_eq!(sessions[0]["detail"]["refusal_count"], 0, "{sessions:#?}");

    let mut flood = Command::new("ssh");
    ssh_options(&mut flood, &s.key);
    for i in 0..100 {
        flood.env(format!("FLOOD_{i:03}"), "x");
    }
    let out = flood
        .args(["-o", "SendEnv=FLOOD_*", "-p", &s.port.to_string()])
        .args(["instituto@127.0.0.1", "-s", "sftp"])
        .output()
        .expect("ssh");
    let sessions = sessions_when(&s.server, |sessions| sessions.len() >= 2);
    let flooded = sessions.iter().find(|e| e["detail"]["file_count"] == 0);
    let detail = &flooded.unwrap()["detail"];
    assert_eq!(
        detail["error"],
        "cut: the client sent 8 requests this server refuses (a shell, a command, forwarding, \
         another subsystem or channel…); an SFTP client sends none",
        "{detail:#}\n{}",
        text(&out)
    );
    assert!(
        detail["refusals"]
            .to_string()
            .contains("environment variable \\\"FLOOD_"),
        "{detail:#}"
    );
}

/// Starts OpenSSH's `ssh` as a ControlMaster logged in with the institute's key, then runs
/// `ask` with an `ssh -S` command through it (no key of its own, options and port set) until
/// the master has gone or `ask` has run 40 times; returns the master and how many ran.
fn ask_master_until_cut(
    s: &Sftp,
    mut ask: impl FnMut(&mut Command),
) -> (std::process::Child, usize) {
    let port = s.port.to_string();
    let ctl = s.dir.join(format!("ctl-{}", unique()));
    let mut master = Command::new("ssh");
    ssh_options(&mut master, &s.key);
    let master = master
        .args(["-M", "-S", ctl.to_str().unwrap(), "-N", "-p", &port])
        .arg("instituto@127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh");
    let mut master = master;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ctl.exists() {
        assert!(std::time::Instant::now() < deadline, "no ControlMaster");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut asked = 0;
    while asked < 40 && master.try_wait().unwrap().is_none() {
        let mut mux = Command::new("ssh");
        mux.args(["-S", ctl.to_str().unwrap(), "-o", "ControlMaster=no"])
            .args(["-o", "BatchMode=yes", "-p", &port])
            .stdin(Stdio::null());
        ask(&mut mux);
        asked += 1;
    }
    (master, asked)
}

/// The entry of the ControlMaster's session, once journaled, checked to be cut for the
/// requests refused. Once the master is cut, an `ssh -S` that finds no master falls back to a
/// connection of its own, which has no key and logs in to nothing: it is not this entry.
fn cut_master_session(server: &Server) -> serde_json::Value {
    let logged_in = |e: &serde_json::Value| e["detail"]["authenticated"] == true;
    let sessions = sessions_when(server, |sessions| sessions.iter().any(logged_in));
    let detail = sessions.iter().find(|e| logged_in(e)).unwrap()["detail"].clone();
    assert_eq!(
        detail["error"],
        "cut: the client sent 8 requests this server refuses (a shell, a command, forwarding, \
         another subsystem or channel…); an SFTP client sends none",
        "{detail:#}"
    );
    detail
}

/// What the SSH library refuses by itself costs the log nothing: OpenSSH's `ssh -tt` sends a
/// `break` request for every `~B` typed at the start of a line, two thousand here, each of
/// which it would log.
#[test]
fn requests_the_ssh_library_refuses_cost_the_log_nothing() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let mut ssh = Command::new("ssh");
    ssh_options(&mut ssh, &s.key);
    let mut client = ssh
        .args(["-tt", "-p", &s.port.to_string(), "instituto@127.0.0.1"])
        .args(["-s", "sftp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh");
    let mut stdin = client.stdin.take().unwrap();
    let _ = stdin.write_all(&b"~B\n".repeat(2000));
    // The line ends are no SFTP request: the session is cut for them (if its client has not
    // left on the server's answer to a break), after the breaks.
    sessions_when(&s.server, |sessions| !sessions.is_empty());
    let lines = s.server.log().matches("unknown channel request").count();
    assert_eq!(lines, 0, "{lines} log lines for one client's requests");
    drop(stdin);
    let _ = client.kill();
    let _ = client.wait();
}

/// A client that pipelines SFTP requests this server refuses (a path out of its folder, ten
/// thousand times) has each refused and counted in its entry, and costs the log a few lines,
/// not one a request.
#[test]
fn refused_sftp_requests_are_counted_and_cost_the_log_no_flood() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let mut requests = raw::init();
    for id in 0..10_000 {
        requests.extend(raw::realpath(id, "/../etc"));
    }
    let mut client = s.raw_session(requests, Vec::new(), true);
    // The replies are read, so that the client can end.
    let mut replies = client.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut replies, &mut std::io::sink()));
    let _ = client.wait();
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    assert_eq!(detail["refusal_count"], 10_000, "{detail:#}");
    assert_eq!(detail["refusals"].as_array().unwrap().len(), 32);
    let lines = s.server.log().matches("SFTP request refused").count();
    assert!(
        lines <= 32,
        "{lines} log lines for one client's refused requests"
    );
}

/// A session that ends with an upload still open, or closed under a hidden name and never
/// renamed, hands neither over, keeps nothing of them, and names both in its journal entry
/// with the bytes received.
#[test]
fn uploads_a_session_leaves_unfinished_are_discarded_and_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let data = s.server.data.clone();
    let before = tree(&data);
    let pkg = site_package("20240602_2000", &[]);
    let mut requests = raw::init();
    requests.extend(raw::open_write(1, "PREP_20240602_2000.zip"));
    let half = pkg.len() / 2;
    requests.extend(raw::write(2, "1", 0, &pkg[..half]));
    requests.extend(raw::open_write(3, ".PREP_20240602_2015.zip.part"));
    requests.extend(raw::write(4, "2", 0, &pkg));
    requests.extend(raw::close(5, "2"));
    // The requests end, and so does the session, with the first upload still open.
    let mut client = s.raw_session(requests, Vec::new(), true);
    let _ = client.wait();

    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    assert_eq!(detail["file_count"], 0, "{detail:#}");
    assert_eq!(detail["unfinished_count"], 2, "{detail:#}");
    let mut unfinished: Vec<(String, u64)> = detail["unfinished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    unfinished.sort();
    assert_eq!(
        unfinished,
        vec![
            (".PREP_20240602_2015.zip.part".to_owned(), pkg.len() as u64),
            ("PREP_20240602_2000.zip".to_owned(), half as u64),
        ]
    );
    assert!(events(&s.server, "received").is_empty());
    let after: Vec<String> = tree(&data)
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with("bitacora"))
        .collect();
    assert!(after.is_empty(), "{after:?}");
}

/// An upload cut short under its hidden name and resumed in the same session with OpenSSH's
/// `reput` goes on from where it stopped: the package renamed to its final name is the whole
/// file, byte for byte, and goes live, never a file whose first bytes are zeros refused as
/// not an archive.
#[test]
fn an_upload_resumed_with_reput_goes_on_from_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let bytes = site_package("20240602_2000", &[("pad.bin", &[7u8; 4096])]);
    let pkg = s.local("PREP_20240602_2000.zip", &bytes);
    let half = s.local("half.zip", &bytes[..bytes.len() / 2]);
    let out = s.batch(&format!(
        "put {} .PREP_20240602_2000.zip.part
reput {} .PREP_20240602_2000.zip.part
\
         rename .PREP_20240602_2000.zip.part PREP_20240602_2000.zip
",
        half.display(),
        pkg.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    let outcome = &detail["files"][0]["outcome"];
    assert_eq!(outcome["outcome"], "published", "{detail:#}");
    assert_eq!(outcome["sha256"], sha256_hex(&bytes), "{detail:#}");
    assert_eq!(detail["unfinished_count"], 0, "{detail:#}");
    s.server.wait_corte("20240602_2000");
}

/// Every upload a session received is accounted for: a rename onto the hidden name of another
/// upload waiting for its name is refused (SFTP's rename does not replace, as OpenSSH's server
/// refuses it), and an upload sent again under its hidden name, or removed, names the one it
/// replaced in the session's entry, each with its bytes.
#[test]
fn no_upload_waiting_for_its_name_is_lost_without_a_word() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let a = s.local("a.zip", &[5; 300]);
    let b = s.local("b.zip", &[6; 200]);
    let c = s.local("c.zip", &[7; 100]);
    let d = s.local("d.zip", &[8; 50]);
    let out = s.batch(&format!(
        "put {} .PREP_A.zip.part\nput {} .PREP_B.zip.part\n\
         -rename .PREP_B.zip.part .PREP_A.zip.part\nput {} .PREP_B.zip.part\n\
         put {} .PREP_D.zip.part\nrm .PREP_D.zip.part\n",
        a.display(),
        b.display(),
        c.display(),
        d.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    let refused = detail["refusals"].as_array().unwrap().iter().any(|r| {
        r.as_str()
            .unwrap()
            .contains("\".PREP_A.zip.part\" already names an upload")
    });
    assert!(refused, "{detail:#}");
    let mut unfinished: Vec<(String, u64)> = detail["unfinished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    unfinished.sort();
    let mut expected = vec![
        (".PREP_A.zip.part".to_owned(), 300),
        (".PREP_B.zip.part".to_owned(), 200),
        (".PREP_B.zip.part".to_owned(), 100),
        (".PREP_D.zip.part".to_owned(), 50),
    ];
    expected.sort();
    assert_eq!(unfinished, expected, "{detail:#}");
    assert_eq!(detail["unfinished_count"], 4, "{detail:#}");
}

/// A client uploading a file under a hidden name and removing it, again and again, has every
/// one counted in its entry and costs the log a bounded number of lines, not one an upload.
#[test]
fn uploads_removed_again_and_again_are_counted_and_cost_the_log_no_flood() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let a = s.local("a.zip", &[5; 10]);
    let times = 600;
    let batch = format!(
        "put {} .PREP_A.zip.part\nrm .PREP_A.zip.part\n",
        a.display()
    )
    .repeat(times);
    let out = s.batch(&batch);
    assert!(out.status.success(), "{}", text(&out));
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    assert_eq!(detail["unfinished_count"], times, "{detail:#}");
    let lines = s
        .server
        .log()
        .matches("left unfinished and discarded")
        .count();
    assert!(
        lines <= 256,
        "{lines} log lines for one client's {times} uploads removed"
    );
}

/// Opens `name` over SFTP and writes one byte every `every`, each waited for, for at most
/// `until`: the error that ended the upload, if the server ended it.
fn drip_upload(
    s: &Sftp,
    name: &str,
    every: std::time::Duration,
    until: std::time::Duration,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    current_thread().block_on(async {
        let (_ssh, sftp) = sftp_session(s).await;
        let mut file = sftp.create(name).await.unwrap();
        let end = tokio::time::Instant::now() + until;
        while tokio::time::Instant::now() < end {
            file.write_all(b"P").await?;
            file.flush().await?;
            tokio::time::sleep(every).await;
        }
        Ok(())
    })
}

/// A client that keeps a file open and sends a byte now and then, well within
/// `sftp_idle_timeout`, is cut once the file has been open for `sftp_upload_timeout`: the
/// half-written file is discarded, never received, and named in the session's entry.
#[test]
fn an_upload_dripped_a_byte_at_a_time_is_cut_at_the_upload_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-upload-timeout", "2s"]);
    let data = s.server.data.clone();
    let before = tree(&data);
    let started = std::time::Instant::now();
    let dripped = drip_upload(
        &s,
        "PREP_20240602_2000.zip",
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(20),
    );
    let took = started.elapsed();
    assert!(
        dripped.is_err(),
        "the upload ran {took:?} and was never cut"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "cut after {took:?}"
    );
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    let error = detail["error"].as_str().unwrap_or_default();
    assert!(error.contains("PREP_20240602_2000.zip"), "{detail:#}");
    assert!(error.contains("(sftp_upload_timeout)"), "{detail:#}");
    assert_eq!(detail["unfinished_count"], 1, "{detail:#}");
    assert_eq!(detail["unfinished"][0]["name"], "PREP_20240602_2000.zip");
    assert!(
        detail["unfinished"][0]["bytes"].as_u64().unwrap() > 0,
        "{detail:#}"
    );
    assert!(events(&s.server, "received").is_empty());
    let after: Vec<String> = tree(&data)
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with("bitacora"))
        .collect();
    assert!(after.is_empty(), "{after:?}");
}

/// A session cut for its upload timeout works on none of the requests its client had sent by
/// then: a client that pipelines a whole package, then more requests than its unread replies
/// leave room for, then the close, has its upload discarded at the cut as the entry says,
/// never handed over when the server reaches the close; and the requests left cost the log
/// no line each.
#[test]
fn a_cut_session_hands_over_nothing_its_client_sent_before_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-upload-timeout", "2s"]);
    let pkg = site_package("20240602_2000", &[]);
    let mut requests = raw::init();
    requests.extend(raw::open_write(1, "PREP_20240602_2000.zip"));
    requests.extend(raw::write(2, "1", 0, &pkg));
    // More replies than the client's window and the pipe nobody reads can hold: the server
    // waits to reply while the rest, and the close, wait for it.
    for id in 0..60_000 {
        requests.extend(raw::realpath(id, "/"));
    }
    let then = vec![raw::close(3, "1")];
    let mut client = s.raw_session(requests, then, false);
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    let error = detail["error"].as_str().unwrap_or_default();
    assert!(error.contains("(sftp_upload_timeout)"), "{detail:#}");
    assert_eq!(detail["file_count"], 0, "{detail:#}");
    assert_eq!(detail["unfinished"][0]["name"], "PREP_20240602_2000.zip");
    // Nothing was handed over after the cut, however long it is waited for.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(events(&s.server, "received").is_empty());
    let lines = s.server.log().matches("russh_sftp").count();
    assert_eq!(
        lines, 0,
        "{lines} log lines for the requests left at the cut"
    );
    let _ = client.kill();
    let _ = client.wait();
}

/// A `.sha256` larger than any evidence may be, uploaded before its package, has the package
/// refused for it, named and journaled, as the intake folder and `ingest` refuse it: it is
/// not the evidence upload alone that fails, leaving the package to go without it.
#[test]
fn a_sidecar_too_large_to_be_evidence_refuses_its_package_over_sftp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = site_package("20240602_2000", &[]);
    let local = s.local("PREP_20240602_2000.zip", &pkg);
    let sidecar = local.with_file_name("PREP_20240602_2000.zip.sha256");
    std::fs::write(&sidecar, vec![b'x'; 70_000]).unwrap();
    let out = s.batch(&format!(
        "put {}\nput {}\n",
        sidecar.display(),
        local.display()
    ));
    assert!(!out.status.success(), "{}", text(&out));
    let rejected = wait_events(&s.server, "rejected", 1);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    let why = rejected[0].to_string();
    assert!(why.contains("PREP_20240602_2000.zip"), "{why}");
    assert!(
        why.contains("the .sha256 file is too large: 70,000 bytes"),
        "{why}"
    );
    assert_eq!(s.server.live_corte(), None);
}

/// A client that opens a session channel and sends on it before asking for the `sftp`
/// subsystem (no OpenSSH client does: hundreds of data messages, and `env` requests) has it
/// read and set aside: the server goes on reading the connection, sees it end, journals the
/// session with the refusal, and its place is free again.
#[test]
fn a_channel_sent_to_before_its_subsystem_cannot_hold_a_place() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-max-sessions", "1"]);
    current_thread().block_on(async {
        let ssh = ssh_login(&s).await;
        let channel = ssh.channel_open_session().await.unwrap();
        for i in 0..300 {
            channel.data_bytes(&b"PK"[..]).await.unwrap();
            if i < 40 {
                channel.set_env(false, "LANG", "C").await.unwrap();
            }
        }
        // Answered: the session still reads what its client sends.
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            ssh.channel_open_session(),
        )
        .await;
        assert!(second.is_ok(), "the server stopped answering its client");
        ssh.disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .unwrap();
    });
    let refusals = refusals_with(&s.server, "before the sftp subsystem").join("\n");
    assert!(refusals.contains("data"), "{refusals}");
    // The place is free: an upload goes through.
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&pkg, "20240602_2000");
}

/// Anyone can open connections to the SFTP port. A flood of them from an address not in
/// `sftp_allow` costs the journal and the log one entry a minute for that address, and the
/// next entry journaled counts those left out.
#[test]
fn a_flood_of_connections_not_allowed_costs_the_journal_one_entry_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let began = jiff::Timestamp::now();
    let flood = 300;
    for _ in 0..flood {
        drop(connect_from("127.0.0.2", s.port));
    }
    // One from another address, accepted after the whole flood: journaled.
    drop(connect_from("127.0.0.3", s.port));
    let from = |refused: &[serde_json::Value], address: &str| -> Vec<serde_json::Value> {
        refused
            .iter()
            .filter(|e| {
                e["detail"]["address"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("{address}:"))
            })
            .cloned()
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let refused = loop {
        let refused = events(&s.server, "sftp-refused");
        if !from(&refused, "127.0.0.3").is_empty() {
            break refused;
        }
        assert!(std::time::Instant::now() < deadline, "{refused:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(from(&refused, "127.0.0.2").len(), 1, "{refused:#?}");
    let last = &from(&refused, "127.0.0.3")[0];
    assert_eq!(
        last["detail"]["reason"], "address not in sftp_allow",
        "{last}"
    );
    assert_eq!(last["detail"]["not_journaled"], flood - 1, "{last}");
    let log = s.server.log();
    assert_eq!(
        log.matches("SFTP connection refused").count(),
        2,
        "one line per address journaled: {log}"
    );

    // The report counts every connection refused, those left out of the journal too.
    let out = tmp.path().join("memoria");
    let to = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    assert_success(
        &difusor()
            .arg("memoria")
            .arg("--data-dir")
            .arg(&s.server.data)
            .arg("--out")
            .arg(&out)
            .args(["--from", &began.to_string(), "--to", &to.to_string()])
            .output()
            .unwrap(),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("memoria.json")).unwrap()).unwrap();
    let refusals: Vec<&str> = report["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "canal")
        .filter_map(|i| i["text"].as_str())
        .collect();
    assert_eq!(
        refusals,
        [format!(
            "{} conexiones SFTP rechazadas antes de autenticarse",
            flood + 1
        )],
        "{:#}",
        report["incidents"]
    );
}

/// Anyone at an allowed address can open connections and end them without logging in (a
/// port probe; an SSH banner and no more) as fast as it likes, and none is a strike towards a
/// ban. A thousand of them cost the journal and the log one entry a minute for that address,
/// and the institute's upload from it goes through all the same.
#[test]
fn connections_that_never_log_in_cost_the_journal_one_entry_a_minute() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    for i in 0..1000 {
        let mut probe = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        if i % 2 == 1 {
            let _ = probe.write_all(b"SSH-2.0-probe\r\n");
        }
    }
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    // On a loaded machine the last probes may still hold this address's places for
    // connections logging in (`sftp_max_startups_per_address`), younger than the 2 s after
    // which one gives way: the upload is then dropped, and is sent again, as a script would.
    let mut tries = 0;
    loop {
        let out = s.batch(&format!("put {}\n", pkg.display()));
        tries += 1;
        if out.status.success() {
            break;
        }
        assert!(tries < 5, "{}", text(&out));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    s.server.wait_corte("20240602_2000");
    let logged_in = |e: &serde_json::Value| e["detail"]["authenticated"] == true;
    sessions_when(&s.server, |sessions| sessions.iter().any(logged_in));
    // The probes' connections have ended too.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let sessions = events(&s.server, "sftp-session");
    let probes = sessions.iter().filter(|e| !logged_in(e)).count();
    assert_eq!(probes, 1, "{probes} entries for one address's probes");
    let log = s.server.log();
    let lines = log.matches("SFTP connection ended").count() + log.matches("SFTP session").count();
    assert_eq!(
        lines, 2,
        "{lines} log lines for one address's probes and an upload"
    );
}

/// Out of file descriptors, the SFTP listener says so once, not at every accept, and says
/// when it accepts again.
#[test]
fn sftp_out_of_descriptors_is_said_once_and_its_end_too() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pid = s.server.pid().unwrap();
    let open = open_files(pid);
    let (soft, limit) = open_files_limit(pid);
    limit(open + 2);
    let held: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let log = s.server.log();
    let failures = log
        .lines()
        .filter(|l| l.contains("SFTP accept failed") || l.contains("cannot accept"))
        .count();
    assert_eq!(failures, 1, "{log}");
    assert!(
        log.contains("cannot accept the institute's SFTP connections"),
        "{log}"
    );

    // The connections left in the queue are accepted first, and take the places of
    // connections logging in from this address until the server sees them closed.
    drop(held);
    limit(soft);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = s.batch("ls\n");
        if out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&out));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        s.server
            .log()
            .contains("accepting the institute's SFTP connections again"),
        "{}",
        s.server.log()
    );
}

/// Waits for the one `evidence-late` entry, checks it names `pkg`, came over SFTP from this
/// machine and matches, and returns its detail.
fn late_evidence_from_sftp(server: &Server, pkg: &[u8]) -> serde_json::Value {
    let late = wait_events(server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(pkg), "{late:#?}");
    let detail = late[0]["detail"].clone();
    assert_eq!(detail["channel"], "sftp", "{detail}");
    assert_eq!(detail["matches"], true, "{detail}");
    assert!(
        detail["origin"]
            .as_str()
            .is_some_and(|o| o.contains("127.0.0.1")),
        "{detail}"
    );
    detail
}

/// In one session: a package `name` that `evidence` is not for (one file of it says
/// `other`), then `evidence` as `<name><suffix>`, then `right`, the package it is for.
fn put_evidence_before_its_package(
    s: &Sftp,
    name: &str,
    suffix: &str,
    evidence: &[u8],
    right: &[u8],
    other: &str,
) {
    let wrong = site_package("20240602_2000", &[("malo.txt", other.as_bytes())]);
    let wrong_local = s.local(name, &wrong);
    let right_local = s.local(name, right);
    let evidence_local = right_local.with_file_name(format!("{name}{suffix}"));
    std::fs::write(&evidence_local, evidence).unwrap();
    let out = s.batch(&format!(
        "put {}\nput {}\nput {}\n",
        wrong_local.display(),
        evidence_local.display(),
        right_local.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
}

/// `mput` sends `X.zip` before `X.zip.sha256`: the package is taken when it is closed,
/// without its sidecar (`if-present`). The sidecar that follows and gives its digest is
/// journaled as that package's evidence, come late, with the client it came from; one that
/// gives another digest is kept for the next upload of that name, as before.
#[test]
fn a_sidecar_put_after_its_package_is_journaled_as_its_evidence_come_late() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let name = "PREP_20240602_2000.zip";
    let pkg = site_package("20240602_2000", &[]);
    let local = s.local(name, &pkg);
    let sidecar = local.with_file_name(format!("{name}.sha256"));
    std::fs::write(&sidecar, corpus::sum_line(&pkg, name)).unwrap();
    let out = s.batch(&format!(
        "put {}\nput {}\n",
        local.display(),
        sidecar.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2000");
    late_evidence_from_sftp(&s.server, &pkg);

    // Package, then a sidecar that is not its own, then the package it is for.
    let right = site_package("20240602_2000", &[("bueno.txt", b"segundo")]);
    let sidecar = corpus::sum_line(&right, name);
    put_evidence_before_its_package(&s, name, ".sha256", sidecar.as_bytes(), &right, "primero");
    assert_verified_with_sidecar(&s.server, 3, &right);
    assert_eq!(events(&s.server, "evidence-late").len(), 1);
}

/// The packages taken before a crash are remembered at the next start: a sidecar put in a
/// later session that gives the digest of the package taken last under its name is journaled
/// as that package's evidence, come late, and is not kept for the next upload of the name: a
/// corrected package put after it is published, not rejected for it.
#[test]
fn a_sidecar_put_after_a_crash_is_journaled_as_the_evidence_of_the_package_taken_before() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(tmp.path(), &[]);
    let name = "PREP_20240602_2000.zip";
    let pkg = site_package("20240602_2000", &[]);
    s.put_until_live(&s.local(name, &pkg), "20240602_2000");
    s.server.kill();
    s.server.restart();

    let sidecar = s.local(
        &format!("{name}.sha256"),
        corpus::sum_line(&pkg, name).as_bytes(),
    );
    let corrected = site_package("20240602_2000", &[("corregido.txt", b"segundo envio")]);
    let corrected_local = s.local(name, &corrected);
    let out = s.batch(&format!(
        "put {}\nput {}\n",
        sidecar.display(),
        corrected_local.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let late = wait_events(&s.server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(&pkg), "{late:#?}");
    let detail = &late[0]["detail"];
    assert_eq!(detail["channel"], "sftp", "{detail}");
    assert_eq!(detail["matches"], true, "{detail}");
    s.server.wait_published(2);
    let rejected = events(&s.server, "rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");
}

/// [`start`] with one key that verifies signatures when they come (`evidence_signature =
/// "if-present"`), and its secret key.
fn start_checking_signatures_if_present(tmp: &Path) -> (Sftp, minisign::SecretKey) {
    let (public, secret) = minisign_keys(&tmp.join("keys"));
    let s = start(
        tmp,
        &[
            "--evidence-signature",
            "if-present",
            "--minisign-keys",
            public.to_str().unwrap(),
        ],
    );
    (s, secret)
}

/// `mput` sends `X.zip` before `X.zip.minisig`: the package is taken when it is closed,
/// without its signature (`evidence_signature = "if-present"`). The signature that follows
/// and verifies it with a configured key is journaled as that package's evidence, come late,
/// with the client it came from, and is not kept for the next upload of the name in the
/// session: a corrected package put after it, unsigned, is published, not rejected for it.
/// A signature that does not verify the package taken is kept for the next upload of its
/// name, as before, and that package is verified with it.
#[test]
fn a_signature_put_after_its_package_is_journaled_and_not_read_with_the_next_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, secret) = start_checking_signatures_if_present(tmp.path());
    let name = "PREP_20240602_2000.zip";
    let minisig = format!("{name}.minisig");
    let pkg = site_package("20240602_2000", &[]);
    let local = s.local(name, &pkg);
    let signature = minisign_signature(&secret, name, &pkg);
    let signature_local = local.with_file_name(&minisig);
    std::fs::write(&signature_local, &signature).unwrap();
    let corrected = site_package("20240602_2000", &[("corregido.txt", b"segundo envio")]);
    let corrected_local = s.local(name, &corrected);
    let out = s.batch(&format!(
        "put {}\nput {}\nput {}\n",
        local.display(),
        signature_local.display(),
        corrected_local.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let detail = late_evidence_from_sftp(&s.server, &pkg);
    assert_eq!(detail["evidence"], minisig.as_str(), "{detail}");
    assert_eq!(detail["signature"], signature.as_str(), "{detail}");
    s.server.wait_published(2);
    let rejected = events(&s.server, "rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");

    // Package, then a signature that is not its own, then the package it is for.
    let right = site_package("20240602_2000", &[("bueno.txt", b"cuarto")]);
    let signature = minisign_signature(&secret, name, &right);
    put_evidence_before_its_package(
        &s,
        name,
        ".minisig",
        signature.as_bytes(),
        &right,
        "tercero",
    );
    assert_verified_with_signature(&s.server, 4, &right);
    assert_eq!(events(&s.server, "evidence-late").len(), 1);
}

/// The institute sends over SFTP, signature and sidecar first, a corte it had left in the
/// intake folder without them: the same bytes are a duplicate, nothing live changes, and the
/// evidence is not dropped with them. The signature verifies them: it is journaled as their
/// evidence (`evidence-late`, whole, with the client). The sidecar gives another digest: it
/// is journaled whole, as not matching, on the `duplicate` entry.
#[test]
fn evidence_put_with_a_package_already_published_is_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, secret) = start_checking_signatures_if_present(tmp.path());
    let name = "PREP_20240602_2000.zip";
    let minisig = format!("{name}.minisig");
    let pkg = site_package("20240602_2000", &[]);
    drop_file(&s.server.entrada(), name, &pkg);
    s.server.wait_corte("20240602_2000");

    let local = s.local(name, &pkg);
    let signature = minisign_signature(&secret, name, &pkg);
    let signature_local = local.with_file_name(&minisig);
    std::fs::write(&signature_local, &signature).unwrap();
    let wrong = corpus::sum_line(b"otros bytes", name);
    let sidecar_local = local.with_file_name(format!("{name}.sha256"));
    std::fs::write(&sidecar_local, &wrong).unwrap();
    let out = s.batch(&format!(
        "put {}\nput {}\nput {}\n",
        signature_local.display(),
        sidecar_local.display(),
        local.display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let detail = late_evidence_from_sftp(&s.server, &pkg);
    assert_eq!(detail["evidence"], minisig.as_str(), "{detail}");
    assert_eq!(detail["signature"], signature.as_str(), "{detail}");
    assert_eq!(detail["duplicate"], true, "{detail}");
    let duplicate = wait_events(&s.server, "duplicate", 1);
    let said = &duplicate[0]["detail"]["evidence"];
    let sidecar = (said.as_array().into_iter().flatten())
        .find(|e| e["evidence"] == format!("{name}.sha256"))
        .unwrap_or_else(|| panic!("{duplicate:#?}"));
    assert_eq!(sidecar["matches"], false, "{sidecar}");
    assert_eq!(sidecar["sidecar"], wrong.as_str(), "{sidecar}");
    assert_eq!(s.server.status()["counts"]["published"], 1);
    assert!(events(&s.server, "rejected").is_empty());
}

/// The space kept free on the data folder's disk (`min_free_space`) is never taken by an
/// upload: with a reserve larger than any disk, a `put` fails at its first write, the client
/// is refused, the session's entry says why in plain words, nothing of the upload is kept and
/// the live corte stays; `/status` and the metrics say the reserve is reached, and the log
/// says it once, not once per write.
#[test]
fn an_upload_that_would_take_the_space_kept_free_is_refused_and_the_live_corte_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(tmp.path(), &[]);
    let first = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&first, "20240602_2000");

    s.server
        .extra
        .extend(["--min-free-space".into(), "1000TiB".into()]);
    s.server.restart();
    let next = s.local(
        "PREP_20240602_2015.zip",
        &site_package(
            "20240602_2015",
            &[("datos/ruido.bin", &corpus::noise(1 << 20))],
        ),
    );
    for _ in 0..2 {
        let out = s.batch(&format!("put {}\n", next.display()));
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("Failure"), "{}", text(&out));
    }
    let refusals = refusals_with(&s.server, "short of disk space").join("\n");
    assert!(
        refusals.contains("nothing of PREP_20240602_2015.zip is kept")
            && refusals.contains("min_free_space"),
        "{refusals}"
    );
    assert_eq!(s.server.live_corte().as_deref(), Some("20240602_2000"));
    assert_eq!(events(&s.server, "received").len(), 1);
    assert!(events(&s.server, "rejected").is_empty());
    let uploads: Vec<String> = tree(&s.server.data.join("tmp"));
    assert!(uploads.is_empty(), "left in tmp/: {uploads:?}");

    let space = &s.server.status()["free_space"];
    assert_eq!(space["reserve_reached"], true, "{space}");
    assert_eq!(space["min_free_bytes"], 1000u64 << 40, "{space}");
    assert!(
        space["disks"][0]["free_bytes"].as_u64().unwrap() > 0,
        "{space}"
    );
    let metrics = curl(&s.server.admin("/metrics"), &[]).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("difusor_disk_reserve_reached{") && l.ends_with(" 1")),
        "{metrics}"
    );
    let log = s.server.log();
    assert_eq!(
        log.matches("the disk is down to the space kept free")
            .count(),
        1,
        "{log}"
    );
}

/// Bytes free for an unprivileged user on the file system of `path`.
fn free_bytes(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).unwrap();
    s.f_bavail * s.f_frsize
}

/// Two sessions uploading at once more than the disk holds beyond the space kept free: each
/// write is checked against the free space less what the other's writes under way will take,
/// so together they never take the disk under the reserve; at least one is refused, and the
/// journal still works afterwards: a package goes live.
#[test]
fn uploads_of_two_sessions_together_never_take_the_space_kept_free() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // A 64 MiB disk for the data folder (unmounted when the test ends, however it ends).
    let Some(_disk) = crate::disk::Mounted::new(&["-t", "tmpfs", "-o", "size=64m", "tmpfs"], &data)
    else {
        return;
    };
    const RESERVE: u64 = 16 << 20;
    let s = start(tmp.path(), &["--min-free-space", "16MiB"]);
    let big: Vec<PathBuf> = ["20240602_2015", "20240602_2030"]
        .iter()
        .map(|corte| {
            s.local(
                &format!("PREP_{corte}.zip"),
                &site_package(corte, &[("datos/ruido.bin", &corpus::noise(40 << 20))]),
            )
        })
        .collect();
    assert!(
        free_bytes(&data) > RESERVE + (40 << 20),
        "one upload fits, not two"
    );

    let done = std::sync::atomic::AtomicBool::new(false);
    let (outs, lowest) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut lowest = u64::MAX;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                lowest = lowest.min(free_bytes(&data));
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            lowest
        });
        let uploads: Vec<_> = big
            .iter()
            .map(|pkg| scope.spawn(|| s.batch(&format!("put {}\n", pkg.display()))))
            .collect();
        let outs: Vec<Output> = uploads.into_iter().map(|u| u.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (outs, sampler.join().unwrap())
    });
    let refused = outs.iter().filter(|o| !o.status.success()).count();
    assert!(
        refused >= 1,
        "two uploads of 40 MiB went through on a 64 MiB disk keeping 16 MiB: {}",
        outs.iter().map(text).collect::<String>()
    );
    assert!(
        lowest >= RESERVE,
        "the free space went down to {lowest} bytes, under the {RESERVE} kept free"
    );
    let refusals = refusals_with(&s.server, "short of disk space").join("\n");
    assert!(refusals.contains("min_free_space"), "{refusals}");

    // The journal and the archive still work: a package goes live.
    let small = s.local(
        "PREP_20240602_2045.zip",
        &site_package("20240602_2045", &[]),
    );
    s.put_until_live(&small, "20240602_2045");
    assert!(events(&s.server, "rejected").is_empty());
    eprintln!(
        "uploads refused: {refused} of 2; lowest free space seen: {lowest} bytes (reserve \
         {RESERVE}); free now: {}",
        free_bytes(&data)
    );
}

/// An upload script run every few minutes through OpenSSH's `ControlMaster auto` and
/// `ControlPersist` (a common `~/.ssh/config`) asks the one connection the first run left open
/// for an `sftp` subsystem at each run: each is taken once the one before has ended, with the
/// dozen variables a desktop sends each time (`SendEnv`), and nothing is refused or cut. The
/// connection's one entry names every upload of every run, the one left under a hidden name
/// too; an `sftp` asking for a subsystem while another is open through the same connection is
/// still refused.
#[test]
fn an_upload_script_reusing_its_controlmaster_runs_one_sftp_after_another() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let ctl = s.dir.join("ctl-persist");
    let port = s.port.to_string();
    let sftp = |batch: &str| {
        let file = s.dir.join(format!("batch-{}", unique()));
        std::fs::write(&file, batch).unwrap();
        let mut cmd = Command::new("sftp");
        ssh_options(&mut cmd, &s.key);
        for name in ["LANG", "LC_ADDRESS", "LC_IDENTIFICATION", "LC_MEASUREMENT"]
            .into_iter()
            .chain(["LC_MONETARY", "LC_NAME", "LC_NUMERIC", "LC_PAPER"])
            .chain(["LC_TELEPHONE", "LC_TIME", "LC_CTYPE", "LC_COLLATE"])
        {
            cmd.env(name, "es_MX.UTF-8");
        }
        cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=10m"])
            .arg("-o")
            .arg(format!("ControlPath={}", ctl.display()))
            .args(["-o", "SendEnv=LANG LC_*", "-P", &port])
            .arg("-b")
            .arg(&file)
            .arg("instituto@127.0.0.1");
        cmd
    };
    let cortes: Vec<String> = (0..10)
        .map(|i| format!("20240602_{}{:02}", 20 + i / 4, (i % 4) * 15))
        .collect();
    for (i, corte) in cortes.iter().enumerate() {
        let pkg = s.local(&format!("PREP_{corte}.zip"), &site_package(corte, &[]));
        let mut batch = format!("put {}\n", pkg.display());
        if i == 4 {
            batch.push_str(&format!("put {} .PREP_{corte}.zip.part\n", pkg.display()));
        }
        let out = sftp(&batch).output().expect("sftp");
        assert!(out.status.success(), "run {i}: {}", text(&out));
        s.server.wait_corte(corte);
    }
    assert!(ctl.exists(), "the first run left no ControlMaster");

    // While one `sftp` runs through the connection, another is refused a second channel
    // (OpenSSH then opens a connection of its own, where the upload lands).
    let mut open = {
        let mut cmd = Command::new("sftp");
        ssh_options(&mut cmd, &s.key);
        cmd.arg("-o")
            .arg(format!("ControlPath={}", ctl.display()))
            .args(["-o", "ControlMaster=no", "-P", &port, "instituto@127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sftp")
    };
    {
        use std::io::{BufRead, Write};
        let mut stdin = open.stdin.take().unwrap();
        writeln!(stdin, "pwd").unwrap();
        // Once it answers, its subsystem runs.
        let answered = std::io::BufReader::new(open.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("Remote working directory"));
        assert!(answered, "the open sftp did not answer");
        let corte = "20240602_2300";
        let pkg = s.local(&format!("PREP_{corte}.zip"), &site_package(corte, &[]));
        let out = sftp(&format!("put {}\n", pkg.display()))
            .output()
            .expect("sftp");
        assert!(out.status.success(), "{}", text(&out));
        s.server.wait_corte(corte);
        drop(stdin);
    }
    let _ = open.wait();
    let mut exit = Command::new("ssh");
    exit.arg("-S")
        .arg(&ctl)
        .args(["-O", "exit", "-p", &port, "instituto@127.0.0.1"]);
    let out = exit.output().expect("ssh");
    assert!(out.status.success(), "{}", text(&out));

    let master = |e: &serde_json::Value| e["detail"]["file_count"].as_u64() >= Some(10);
    let sessions = sessions_when(&s.server, |sessions| {
        sessions.iter().any(master) && sessions.len() >= 2
    });
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let detail = &sessions.iter().find(|e| master(e)).unwrap()["detail"];
    assert_eq!(detail["error"], serde_json::Value::Null, "{detail:#}");
    assert_eq!(detail["file_count"], 10, "{detail:#}");
    assert_eq!(detail["refusal_count"], 1, "{detail:#}");
    assert!(
        detail["refusals"]
            .to_string()
            .contains("a further session channel"),
        "{detail:#}"
    );
    assert_eq!(detail["unfinished_count"], 1, "{detail:#}");
    assert_eq!(
        detail["unfinished"][0]["name"],
        format!(".PREP_{}.zip.part", cortes[4])
    );
}

/// A connection an upload script's `ControlPersist` keeps open between runs is held to
/// `sftp_idle_timeout` as any other: once its `sftp` has ended, it is cut after as long
/// without an SFTP request, and its entry names its upload and why it ended.
#[test]
fn a_controlmaster_kept_open_between_sftp_runs_is_cut_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &["--sftp-idle-timeout", "2s"]);
    let ctl = s.dir.join("ctl-idle");
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    let controlpath = format!("ControlPath={}", ctl.display());
    let out = s.batch_with(
        &format!("put {}\n", pkg.display()),
        &s.key,
        &[
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=10m",
            "-o",
            &controlpath,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    s.server.wait_corte("20240602_2000");
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    let detail = &sessions[0]["detail"];
    assert_eq!(
        detail["error"],
        "cut: the client sent no SFTP request for 2s (sftp_idle_timeout); keep-alive messages \
         do not count",
        "{detail:#}"
    );
    assert_eq!(detail["file_count"], 1, "{detail:#}");
}
