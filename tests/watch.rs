//! The watched folder takes a file written in place as soon as its `.sha256` sidecar arrives
//! after it, and never because of a sidecar written before the file was finished.

mod support;

use std::time::Duration;

use support::*;

fn sidecar(bytes: &[u8], name: &str) -> String {
    format!("{}  {name}\n", sha256_hex(bytes))
}

#[test]
fn a_sidecar_written_last_completes_its_package() {
    let tmp = tempfile::tempdir().unwrap();
    // A settle time far longer than the test waits: only the sidecar can complete a file.
    let server = Server::start(&tmp.path().join("data"), &["--settle", "10m"]);
    let entrada = server.entrada();

    let pkg = site_package("20240602_2000", &[]);
    std::fs::write(entrada.join("PREP_20240602_2000.zip"), &pkg).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.live_corte(), None, "taken before it was complete");
    std::fs::write(
        entrada.join("PREP_20240602_2000.zip.sha256"),
        sidecar(&pkg, "PREP_20240602_2000.zip"),
    )
    .unwrap();
    server.wait_corte("20240602_2000");
    let verified = events(&server, "verified");
    assert!(
        verified.iter().any(|e| e.to_string().contains("sidecar")),
        "{verified:?}"
    );

    // Sidecar first, package after: the sidecar says nothing about the package's end.
    let pkg = site_package("20240602_2015", &[]);
    std::fs::write(
        entrada.join("PREP_20240602_2015.zip.sha256"),
        sidecar(&pkg, "PREP_20240602_2015.zip"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(entrada.join("PREP_20240602_2015.zip"), &pkg).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2000"));
    assert!(entrada.join("PREP_20240602_2015.zip").exists());
}

/// An OpenSSH server of our own (as root, like the real one), killed when dropped.
struct Sshd(std::process::Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// README's recipe: an account whose key may only run `rrsync -wo <intake folder>`.
#[test]
fn rsync_through_a_restricted_openssh_account_lands_once() {
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let dir = tmp.path();
    for key in ["key", "hostkey"] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .output()
            .expect("ssh-keygen (apt-get install -y openssh-client)");
        assert!(out.status.success());
    }
    let public = std::fs::read_to_string(dir.join("key.pub")).unwrap();
    std::fs::write(
        dir.join("authorized_keys"),
        format!(
            "command=\"/usr/bin/rrsync -wo {}\",restrict {public}",
            entrada.display()
        ),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
             StrictModes no\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").expect("this test runs sshd: run it as root");
    let _sshd = Sshd(
        Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .spawn()
            .expect("sshd (apt-get install -y openssh-server; run as root)"),
    );
    let ssh = format!(
        "ssh -p {port} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o LogLevel=ERROR -o ConnectionAttempts=20",
        dir.join("key").display()
    );
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let remote = format!("{}@127.0.0.1:", user.trim());
    let local = dir.join("PREP_20240602_2000.zip");
    std::fs::write(&local, site_package("20240602_2000", &[])).unwrap();

    let mut sent = false;
    for _ in 0..50 {
        let out = Command::new("rsync")
            .args(["-e", &ssh])
            .arg(&local)
            .arg(&remote)
            .output()
            .expect("rsync");
        if out.status.success() {
            sent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // sshd still starting
    }
    assert!(sent, "rsync never got through");
    server.wait_corte("20240602_2000");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        server.status()["counts"]["received"],
        1,
        "taken exactly once"
    );

    // The key can neither run a command nor read back.
    let mut parts = ssh.split_whitespace();
    let out = Command::new(parts.next().unwrap())
        .args(parts)
        .arg(format!("{}@127.0.0.1", user.trim()))
        .args(["ls", "/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not run rsync"));
    let out = Command::new("rsync")
        .args(["-e", &ssh])
        .arg(format!("{remote}PREP_20240602_2000.zip"))
        .arg(dir.join("back.zip"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.join("back.zip").exists());
}
