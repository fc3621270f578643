//! The watched folder takes a file written in place as soon as its `.sha256` sidecar arrives
//! after it, and never because of a sidecar written before the file was finished.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_sidecar_written_last_completes_its_package() {
    let tmp = tempfile::tempdir().unwrap();
    // A settle time far longer than the test waits: only the sidecar can complete a file.
    let server = Server::start(&tmp.path().join("data"), &["--settle", "10m"]);
    let entrada = server.entrada();

    let pkg = site_package("20240602_2000", &[]);
    std::fs::write(entrada.join("PREP_20240602_2000.zip"), &pkg).unwrap();
    // Not taken for a while: there is no event to wait for, so the while is waited out.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.live_corte(), None, "taken before it was complete");
    std::fs::write(
        entrada.join("PREP_20240602_2000.zip.sha256"),
        corpus::sum_line(&pkg, "PREP_20240602_2000.zip"),
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
        corpus::sum_line(&pkg, "PREP_20240602_2015.zip"),
    )
    .unwrap();
    // The package is written after its sidecar, at a later time.
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(entrada.join("PREP_20240602_2015.zip"), &pkg).unwrap();
    // And not taken for a while: waited out, as above.
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

/// README's recipe: an account whose key may only run `rrsync -wo -munge -no-del <intake
/// folder>`.
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
            "command=\"/usr/bin/rrsync -wo -munge -no-del {}\",restrict {public}",
            entrada.display()
        ),
    )
    .unwrap();
    // sshd takes its port from its configuration: one held until it listens there.
    let reserved = ReservedPort::hold();
    let port = reserved.port;
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
    // Not taken a second time: there is no event to wait for, so a rescan is waited out.
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

    // A link sent with `rsync -l` lands pointing nowhere (munged), and is refused.
    let link = dir.join("PREP_20240602_2015.zip");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    let out = Command::new("rsync")
        .args(["-l", "-e", &ssh])
        .arg(&link)
        .arg(&remote)
        .output()
        .unwrap();
    assert_success(&out);
    let refused = wait_events(&server, "rejected", 1);
    let reason = refused[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("symbolic link") && reason.contains("/rsyncd-munged/"),
        "{reason}"
    );
    assert_eq!(server.status()["counts"]["received"], 1);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// The `rejected` events of the intake folder, once `n` are journaled.
fn folder_refusals(server: &Server, n: usize) -> Vec<serde_json::Value> {
    wait_events(server, "rejected", n)
        .into_iter()
        .filter(|e| e["detail"]["channel"] == "watch")
        .collect()
}

fn mkfifo(path: &std::path::Path) {
    run_ok(std::process::Command::new("mkfifo").arg(path));
}

#[test]
fn a_fifo_in_the_intake_folder_is_refused_and_stalls_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    // A FIFO where a sidecar belongs: opening it for reading would wait for a writer forever.
    mkfifo(&entrada.join("PREP_20240602_2000.zip.sha256"));
    drop_file(
        &entrada,
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    // A FIFO under a package's name.
    mkfifo(&entrada.join("PREP_20240602_2015.zip"));
    drop_file(
        &entrada,
        "PREP_20240602_2030.zip",
        &site_package("20240602_2030", &[]),
    );
    server.wait_corte("20240602_2030");

    let refusals = folder_refusals(&server, 2);
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    for e in &refusals {
        assert!(
            e["detail"]["reason"].as_str().unwrap().contains("FIFO"),
            "{e}"
        );
    }
    use std::os::unix::fs::FileTypeExt;
    for aside in [
        ".rechazado.PREP_20240602_2000.zip.sha256",
        ".rechazado.PREP_20240602_2015.zip",
    ] {
        let kind = std::fs::symlink_metadata(entrada.join(aside))
            .unwrap_or_else(|e| panic!("{aside}: {e}"))
            .file_type();
        assert!(kind.is_fifo(), "{aside} was set aside as it was");
    }
    assert_eq!(server.status()["counts"]["received"], 2);
}

#[test]
fn a_symlink_is_refused_set_aside_and_its_target_never_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let secret = tmp.path().join("secreto.txt");
    let secret_bytes = b"clave-privada-que-no-debe-salir-de-aqui";
    std::fs::write(&secret, secret_bytes).unwrap();
    run_ok(
        std::process::Command::new("ln")
            .arg("-s")
            .arg(&secret)
            .arg(entrada.join("PREP_20240602_2000.zip")),
    );
    // A link renamed into place, the way rsync finishes, and a link as a sidecar.
    let hidden = entrada.join(".PREP_20240602_2015.zip.part");
    std::os::unix::fs::symlink(&secret, &hidden).unwrap();
    std::fs::rename(&hidden, entrada.join("PREP_20240602_2015.zip")).unwrap();
    std::os::unix::fs::symlink(&secret, entrada.join("PREP_20240602_2030.zip.sha256")).unwrap();

    let refusals = folder_refusals(&server, 3);
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    for e in &refusals {
        let reason = e["detail"]["reason"].as_str().unwrap();
        assert!(reason.contains("symbolic link"), "{reason}");
        assert!(
            reason.contains("secreto.txt"),
            "the journal names the target: {reason}"
        );
    }
    for name in [
        "PREP_20240602_2000.zip",
        "PREP_20240602_2015.zip",
        "PREP_20240602_2030.zip.sha256",
    ] {
        let aside = entrada.join(format!(".rechazado.{name}"));
        let meta = std::fs::symlink_metadata(&aside).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            meta.file_type().is_symlink(),
            "the link itself is set aside"
        );
        assert!(!entrada.join(name).exists());
    }
    assert_eq!(std::fs::read(&secret).unwrap(), secret_bytes);
    // A real package still goes live, and nothing anywhere in the data folder holds the
    // secret's bytes.
    drop_file(
        &entrada,
        "PREP_20240602_2030.zip",
        &site_package("20240602_2030", &[]),
    );
    server.wait_corte("20240602_2030");
    assert_eq!(server.status()["counts"]["received"], 1);
    for file in files_under(&server.data) {
        let is_link = std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink();
        if !is_link {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(secret_bytes.len()).any(|w| w == secret_bytes),
                "{} holds a copy of the secret",
                file.display()
            );
        }
    }
}

#[test]
fn names_with_control_characters_are_refused_once_and_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let pkg = site_package("20240602_2000", &[]);
    std::fs::write(entrada.join("PREP_20240602_2000\n.zip"), &pkg).unwrap();
    drop_file(&entrada, "PREP_20240602\t2015.zip", &pkg);

    let refusals = folder_refusals(&server, 2);
    let names: Vec<&str> = refusals
        .iter()
        .map(|e| e["detail"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"PREP_20240602_2000\n.zip"), "{names:?}");
    assert!(names.contains(&"PREP_20240602\t2015.zip"), "{names:?}");
    for e in &refusals {
        let reason = e["detail"]["reason"].as_str().unwrap();
        assert!(reason.contains("control characters"), "{reason}");
    }
    assert!(entrada.join(".rechazado.PREP_20240602_2000\n.zip").exists());
    assert!(entrada.join(".rechazado.PREP_20240602\t2015.zip").exists());
    // Journaled once per file, not at every rescan of the folder (one a second).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(events(&server, "rejected").len(), 2);
    assert_eq!(server.status()["counts"]["received"], 0);
}

/// A name `n` bytes long for corte `corte`, padded before its `.zip`.
fn long_name(corte: &str, n: usize) -> String {
    let head = format!("{corte}_PREP_SITIO_");
    format!("{head}{}.zip", "x".repeat(n - head.len() - ".zip".len()))
}

/// A name ending in a dot or a space (which Windows and many tools drop, so the package
/// would be kept under a name its sender cannot write back), or too long for its evidence's
/// name (`<name>.minisig`) to be a file name, is refused at once saying why, not taken or
/// left waiting for a sidecar that cannot be written. The longest name that leaves room for
/// its evidence is taken with it.
#[test]
fn names_a_sender_cannot_reproduce_or_without_room_for_evidence_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--evidence-sidecar", "required"],
    );
    let entrada = server.entrada();
    let pkg = site_package("20240602_2100", &[]);
    let too_long = long_name("20240602_2130", 248);
    for name in [
        "20240602_2100_PREP_SITIO.zip.",
        "20240602_2115_PREP_SITIO.zip ",
        &too_long,
    ] {
        std::fs::write(entrada.join(name), &pkg).unwrap();
    }
    let refusals = folder_refusals(&server, 3);
    let reason = |name: &str| {
        let e = refusals.iter().find(|e| e["detail"]["name"] == name);
        let e = e.unwrap_or_else(|| panic!("{name:?} not refused: {refusals:#?}"));
        e["detail"]["reason"].as_str().unwrap().to_owned()
    };
    for name in [
        "20240602_2100_PREP_SITIO.zip.",
        "20240602_2115_PREP_SITIO.zip ",
    ] {
        let why = reason(name);
        assert!(why.contains("ends in a dot or a space"), "{why}");
        assert!(entrada.join(format!(".rechazado.{name}")).exists());
    }
    let why = reason(&too_long);
    assert!(
        why.contains("248 bytes") && why.contains("at most 247") && why.contains(".minisig"),
        "{why}"
    );
    assert!(!entrada.join(&too_long).exists(), "set aside");

    let longest = long_name("20240602_2145", 247);
    let good = site_package("20240602_2145", &[]);
    std::fs::write(
        entrada.join(format!("{longest}.sha256")),
        format!("{}  {longest}\n", sha256_hex(&good)),
    )
    .unwrap();
    std::fs::write(entrada.join(&longest), &good).unwrap();
    server.wait_corte("20240602_2145");
    assert_eq!(server.status()["counts"]["received"], 1);

    // `difusor ingest` says the same.
    let own = tmp.path().join("20240602_2200_PREP_SITIO.zip ");
    std::fs::write(&own, site_package("20240602_2200", &[])).unwrap();
    let out = server.run(&["ingest", own.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ends in a dot or a space"), "{said}");
    assert_eq!(server.status()["counts"]["received"], 1);
}

#[test]
fn an_upload_written_in_place_is_not_taken_while_its_writer_pauses() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    // settle is 300 ms here: the pause below is many times longer.
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let pad: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let pkg = site_package("20240602_2000", &[("pad.bin", &pad)]);
    let (first, rest) = pkg.split_at(pkg.len() / 2);

    let path = entrada.join("PREP_20240602_2000.zip");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(first).unwrap();
    file.sync_all().unwrap();
    // The writer holds the file open and sends nothing for 2.5 s (a stalled link).
    let pause = std::time::Instant::now();
    while pause.elapsed() < Duration::from_millis(2500) {
        let counts = server.status()["counts"].clone();
        assert_eq!(counts["received"], 0, "taken while still open: {counts}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(path.exists());
    file.write_all(rest).unwrap();
    drop(file);
    server.wait_corte("20240602_2000");
    let counts = server.status()["counts"].clone();
    assert_eq!(counts["received"], 1, "{counts}");
    assert_eq!(counts["rejected"], 0, "{counts}");
}

/// A file written in place and read by another program before it is taken (an on-access
/// virus scanner, an operator's `sha256sum`, a backup agent): the reader's open is matched by
/// its close, so the package is taken once both are done, as if no one had read it; one
/// still held open by its reader waits for that close, as for any program's.
#[test]
fn a_package_read_by_another_program_before_it_is_taken_is_still_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    // Read and closed at once after its writer closed it.
    let path = entrada.join("20240602_2000_PREP.zip");
    std::fs::write(&path, site_package("20240602_2000", &[])).unwrap();
    assert!(!std::fs::read(&path).unwrap().is_empty());
    server.wait_corte("20240602_2000");
    // Read, and held open by its reader for a while after its writer closed it.
    let path = entrada.join("20240602_2015_PREP.zip");
    std::fs::write(&path, site_package("20240602_2015", &[])).unwrap();
    let reader = std::fs::File::open(&path).unwrap();
    std::thread::sleep(Duration::from_secs(1)); // settle is 300 ms here
    let counts = server.status()["counts"].clone();
    assert_eq!(counts["received"], 1, "taken while still open: {counts}");
    drop(reader);
    server.wait_corte("20240602_2015");
    let counts = server.status()["counts"].clone();
    assert_eq!(counts["received"], 2, "{counts}");
    assert_eq!(counts["rejected"], 0, "{counts}");
}

/// Packages already in the intake folder when the server starts are found by one scan, in the
/// order the directory lists them: they are taken in the order of their cortes all the same,
/// so none is archived as older than a later one and the latest is live.
#[test]
fn packages_found_together_at_start_go_live_in_corte_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let entrada = data.join("entrada");
    std::fs::create_dir_all(&entrada).unwrap();
    let cortes: Vec<String> = (0..12)
        .map(|i| format!("20240602_{:02}{:02}", 20 + i / 4, (i % 4) * 15))
        .collect();
    // Written latest first, some with a sidecar (complete at once), some without (complete
    // after `settle`): neither the writing order nor the evidence may change the order taken.
    for (i, corte) in cortes.iter().enumerate().rev() {
        let name = format!("{corte}_PREP.zip");
        let pkg = site_package(corte, &[]);
        std::fs::write(entrada.join(&name), &pkg).unwrap();
        if i % 3 == 0 {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::write(
                entrada.join(format!("{name}.sha256")),
                corpus::sum_line(&pkg, &name),
            )
            .unwrap();
        }
    }
    let server = Server::start(&data, &[]);
    server.wait_corte(cortes.last().unwrap());
    assert_eq!(events(&server, "older"), Vec::<serde_json::Value>::new());
    let published: Vec<String> = publications(&server)
        .iter()
        .map(|p| p["corte_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, cortes, "published in corte order");
}

/// Makes a file immutable (`chattr +i`: not even root may remove or rename it) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &std::path::Path) -> Immutable {
        run_ok(std::process::Command::new("chattr").arg("+i").arg(path));
        Immutable(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// A file the server may read but not remove (the folder's owner is another user, or the file
/// is immutable) is decided once: not taken again at every rescan, flooding the journal and
/// reading it again and again, until it changes.
#[test]
fn a_file_that_cannot_be_removed_after_it_is_taken_is_taken_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let entrada = data.join("entrada");
    std::fs::create_dir_all(&entrada).unwrap();
    let good = entrada.join("PREP_20240602_2000.zip");
    std::fs::write(&good, site_package("20240602_2000", &[])).unwrap();
    let junk = entrada.join("basura.zip");
    std::fs::write(&junk, b"not a package").unwrap();
    let _locks = [Immutable::set(&good), Immutable::set(&junk)];

    let server = Server::start(&data, &[]);
    server.wait_corte("20240602_2000");
    wait_events(&server, "rejected", 1);
    let errors = wait_events(&server, "intake-error", 2);
    // Many rescans (one a second) later, still one decision and one error for each.
    std::thread::sleep(Duration::from_millis(4000));
    assert_eq!(events(&server, "received").len(), 2);
    assert_eq!(events(&server, "duplicate").len(), 0);
    assert_eq!(events(&server, "rejected").len(), 1);
    let errors_now = events(&server, "intake-error");
    assert_eq!(errors_now.len(), 2, "{errors_now:#?}");
    for e in &errors {
        let error = e["detail"]["error"].as_str().unwrap();
        assert!(error.contains("not taken again until it changes"), "{e}");
    }
    assert!(good.exists() && junk.exists());

    // Once it can go and something new comes under the same name, that is taken.
    drop(_locks);
    std::fs::remove_file(&good).unwrap();
    drop_file(
        &entrada,
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[("nuevo.txt", b"otra vez")]),
    );
    server.wait_published(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while good.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!good.exists(), "taken and left in the folder");
}

/// The intake folder removed while serving is said once; made again, it is watched again, so
/// an upload written in place there is still not taken while its writer pauses.
#[test]
fn an_intake_folder_removed_and_made_again_is_watched_again() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    std::fs::remove_dir_all(&entrada).unwrap();
    let gone = wait_events(&server, "intake-error", 1);
    assert!(
        gone[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("is gone"),
        "{gone:#?}"
    );
    std::fs::create_dir(&entrada).unwrap();
    // The folder is looked at once a second.
    std::thread::sleep(Duration::from_millis(2500));

    let pkg = site_package("20240602_2000", &[]);
    let (first, rest) = pkg.split_at(pkg.len() / 2);
    let mut file = std::fs::File::create(entrada.join("PREP_20240602_2000.zip")).unwrap();
    file.write_all(first).unwrap();
    // A pause far longer than settle (300 ms), the file held open.
    std::thread::sleep(Duration::from_millis(2500));
    file.write_all(rest).unwrap();
    drop(file);
    server.wait_corte("20240602_2000");
    let counts = server.status()["counts"].clone();
    assert_eq!(counts["received"], 1, "{counts}");
    assert_eq!(counts["rejected"], 0, "{counts}");
    assert_eq!(events(&server, "intake-error").len(), 1);
}

/// A process that writes a file in the folder without pause makes events faster than they are
/// looked at, all the more while packages are being taken: the server's memory stays bounded.
#[test]
fn a_flood_of_events_does_not_grow_the_server() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let before = server.peak_rss_kib();
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(entrada.join("escrito.zip"))
        .unwrap();
    let start = std::time::Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(10) {
        // Files to take keep the intake busy between the events.
        if n.is_multiple_of(2000) {
            drop_file(&entrada, &format!("basura-{n}.zip"), b"not a package");
        }
        // Each write is an event.
        writer.write_all(b"x").unwrap();
        n += 1;
    }
    drop(writer);
    let peak = server.peak_rss_kib();
    eprintln!("peak resident memory {before} KiB before, {peak} KiB after {n} writes");
    assert!(
        peak < before + 64 * 1024,
        "peak resident memory grew from {before} KiB to {peak} KiB over {n} writes"
    );
    // And the intake still works.
    std::fs::remove_file(entrada.join("escrito.zip")).unwrap();
    drop_file(
        &entrada,
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
}

/// A package sent again under the same name while the first is being taken (a corrected file,
/// an upload retried) is not removed with the first one unseen: it is taken in turn.
#[test]
fn a_package_replaced_while_it_is_taken_is_taken_in_turn() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    // Large enough that verifying and publishing it takes a while after it is received.
    let first = site_package("20240602_2000", &[("pad.bin", &corpus::noise(40_000_000))]);
    let second = site_package("20240602_2000", &[("corregido.txt", b"segundo envio")]);
    drop_file(&entrada, "PREP_20240602_2000.zip", &first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.status()["counts"]["received"] != 1 {
        assert!(std::time::Instant::now() < deadline, "never received");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The first is received (read whole); the second replaces it before it is tidied away.
    drop_file(&entrada, "PREP_20240602_2000.zip", &second);
    server.wait_received(2);
    let received = events(&server, "received");
    let sha = sha256_hex(&second);
    assert!(
        received.iter().any(|e| e["package"] == sha),
        "the second was never taken: {received:#?}"
    );
}

/// A `watch_dir` given relative to the working folder (the default `./entrada` of a server
/// started in its data folder): the events and the rescan name each file the same way, so
/// files written in place while others are being taken are each taken once, and none is
/// taken again after it left, as if this server had failed to take it.
#[test]
fn a_relative_intake_folder_takes_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let entrada = tmp.path().join("entrada");
    std::fs::create_dir_all(&entrada).unwrap();
    // The server runs in this process's working folder: name the folder from there.
    let cwd = std::env::current_dir().unwrap();
    let mut relative = std::path::PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.push(entrada.strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let server = Server::start(
        &tmp.path().join("data"),
        &["--watch-dir", relative.to_str().unwrap(), "--settle", "2s"],
    );
    // Files written in place, a second wave while the first is being taken.
    for i in 0..60 {
        std::fs::write(
            entrada.join(format!("basura-a{i:02}.zip")),
            b"not a package",
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..20 {
        std::fs::write(
            entrada.join(format!("basura-b{i:02}.zip")),
            b"not a package",
        )
        .unwrap();
    }
    wait_events(&server, "rejected", 80);
    std::thread::sleep(Duration::from_secs(3));
    let errors = events(&server, "intake-error");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(events(&server, "received").len(), 80);
    assert_eq!(events(&server, "rejected").len(), 80);
    let status = server.status();
    assert!(status["intake_failing"].is_null(), "{status}");
}

/// The `intake-error` events naming `name`.
fn intake_errors(server: &Server, name: &str) -> Vec<serde_json::Value> {
    events(server, "intake-error")
        .into_iter()
        .filter(|e| e["detail"]["name"] == name)
        .collect()
}

/// Puts a package `name` that no one but root may open (mode 000) into `entrada`, renamed
/// into place: the rename's events wake the intake twice.
fn put_unreadable(entrada: &std::path::Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let part = entrada.join(format!(".{name}.part"));
    std::fs::write(&part, site_package("20240602_2000", &[])).unwrap();
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::rename(&part, entrada.join(name)).unwrap();
}

#[test]
fn a_file_the_server_cannot_open_is_said_once_per_change_however_often_it_is_woken() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_bound_by_permissions(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let name = "20240602_2000_PREP.zip";
    put_unreadable(&entrada, name);
    let status = server.wait_status("intake failing", |s| {
        s["intake_failing"]["name"] == name && s["intake_failing"]["failures"].as_u64() >= Some(3)
    });
    // Tried at once, then after 2 s and 4 s more: the same failure, said once.
    let errors = intake_errors(&server, name);
    assert_eq!(errors.len(), 1, "{errors:#?}; status {status:#}");
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(error.contains("cannot be opened by this server"), "{error}");

    // Changed, it is tried at once, and said again, once.
    run_ok(std::process::Command::new("touch").arg(entrada.join(name)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while intake_errors(&server, name).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(intake_errors(&server, name).len(), 2);
}

#[test]
fn intake_failing_is_cleared_once_the_file_that_failed_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_bound_by_permissions(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let name = "20240602_2000_PREP.zip";
    put_unreadable(&entrada, name);
    server.wait_status("intake failing", |s| s["intake_failing"]["name"] == name);
    // Gone, it fails no more: `/status` says so without waiting for another package.
    std::fs::remove_file(entrada.join(name)).unwrap();
    server.wait_status("intake no longer failing", |s| {
        s["intake_failing"].is_null()
    });
    assert_eq!(server.status()["counts"]["received"], 0);
}

#[test]
fn a_folder_named_like_a_package_is_journaled_once_and_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let folder = entrada.join("20240602_2100_PREP.zip");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("index.html"), b"<h1>PREP</h1>").unwrap();
    let refusals = folder_refusals(&server, 1);
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    let reason = refusals[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"20240602_2100_PREP.zip\"") && reason.contains("it is a folder"),
        "{reason}"
    );
    // Packages are still taken, and the folder is not said again at each rescan.
    drop_file(
        &entrada,
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    server.wait_corte("20240602_2000");
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(folder_refusals(&server, 1).len(), 1);
    assert!(folder.join("index.html").is_file(), "left where it is");
}

/// Thousands of files that can only be refused (empty, text, noise: what a broken or
/// compromised script drops) do not hold back a package that arrives among them: it goes live
/// before them, and each of them is still refused and journaled in the end.
#[test]
fn a_package_does_not_wait_behind_a_flood_of_junk() {
    const JUNK: usize = 600;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let junk_left = || {
        std::fs::read_dir(&entrada)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("_basura"))
            .count()
    };
    for i in 0..JUNK {
        let (name, bytes): (String, Vec<u8>) = match i % 3 {
            0 => (format!("{i:05}_basura.zip"), Vec::new()),
            1 => (
                format!("{i:05}_basura.txt"),
                format!("no es un paquete {i}\n").repeat(50).into_bytes(),
            ),
            _ => (format!("{i:05}_basura_PREP.zip"), corpus::noise(2000 + i)),
        };
        std::fs::write(staging.join(&name), bytes).unwrap();
        std::fs::rename(staging.join(&name), entrada.join(&name)).unwrap();
    }
    // The junk is being refused when the package comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while junk_left() == JUNK {
        assert!(std::time::Instant::now() < deadline, "no junk was taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pkg = site_package("20240602_2000", &[]);
    std::fs::write(staging.join("PREP_20240602_2000.zip"), &pkg).unwrap();
    std::fs::rename(
        staging.join("PREP_20240602_2000.zip"),
        entrada.join("PREP_20240602_2000.zip"),
    )
    .unwrap();
    server.wait_corte("20240602_2000");
    let left = junk_left();
    assert!(
        left > JUNK / 2,
        "the package waited until {} of {JUNK} junk files were refused",
        JUNK - left
    );
    // The junk is still refused, each file journaled.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while junk_left() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "junk left: {}",
            junk_left()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rejected = events(&server, "rejected");
    assert_eq!(
        rejected
            .iter()
            .filter(|e| e.to_string().contains("_basura"))
            .count(),
        JUNK
    );
}

/// A file found complete and removed before its turn in the batch comes is not taken: no
/// `intake-error`, and `/status` does not say the intake is failing.
#[test]
fn a_file_removed_while_it_waits_its_turn_is_skipped_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let entrada = data.join("entrada");
    std::fs::create_dir_all(&entrada).unwrap();
    let mut rng = fastrand::Rng::with_seed(test_seed());
    let filler: Vec<u8> = std::iter::repeat_with(|| rng.u8(..))
        .take(2 << 20)
        .collect();
    // One batch: no more than the watcher takes before it looks at the folder again.
    let cortes: Vec<String> = (0..12)
        .map(|i| format!("20240602_20{:02}", i * 2))
        .collect();
    for corte in &cortes {
        let pkg = site_package(corte, &[("descargas/relleno.bin", &filler)]);
        std::fs::write(entrada.join(format!("{corte}_PREP.zip")), pkg).unwrap();
    }
    let server = Server::start(&data, &[]);
    // The batch is under way: the last package waits its turn, and is removed.
    server.wait_received(1);
    let last = format!("{}_PREP.zip", cortes.last().unwrap());
    std::fs::remove_file(entrada.join(&last)).unwrap();
    server.wait_published(cortes.len() as i64 - 1);
    std::thread::sleep(Duration::from_secs(1));
    let received = events(&server, "received");
    assert!(
        !received.iter().any(|e| e["name"] == last.as_str()),
        "{last} was taken before it was removed: the batch went too fast for this test"
    );
    assert_eq!(
        intake_errors(&server, &last),
        Vec::<serde_json::Value>::new()
    );
    let status = server.status();
    assert!(status["intake_failing"].is_null(), "{status}");
}

/// rsync and `mput` send `X.zip` before `X.zip.sha256`: under `if-present` the package is
/// taken at once, without it. The sidecar that comes after and gives the package's digest
/// is journaled as that package's evidence, come late, and leaves the folder: a corrected
/// package sent again under the same name is not rejected for it. A sidecar that gives
/// another digest stays, and goes with the next upload of its name (evidence first).
#[test]
fn a_sidecar_sent_after_its_package_is_journaled_and_not_read_with_the_next_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--settle", "1s"]);
    let entrada = server.entrada();
    let name = "PREP_20240602_2000.zip";
    let first = site_package("20240602_2000", &[]);
    drop_file(&entrada, name, &first);
    server.wait_corte("20240602_2000");
    let sum = corpus::sum_line(&first, name);
    drop_file(&entrada, &format!("{name}.sha256"), sum.as_bytes());

    assert_late_evidence_taken(
        &server,
        &first,
        ("sidecar", &sum),
        &entrada.join(format!("{name}.sha256")),
    );

    // Corrected and sent again, package first: taken without evidence, not rejected.
    let second = site_package("20240602_2015", &[("corregido.txt", b"segundo envio")]);
    drop_file(&entrada, "PREP_20240602_2015.zip", &second);
    server.wait_corte("20240602_2015");
    let third = site_package("20240602_2000", &[("corregido.txt", b"tercer envio")]);
    drop_file(&entrada, name, &third);
    server.wait_received(3);
    let rejected = events(&server, "rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");
    let verified = wait_events(&server, "verified", 3);
    assert!(
        verified.iter().any(|e| e["package"] == sha256_hex(&third)),
        "{verified:#?}"
    );

    // A sidecar for the next upload of a name, sent first: it matches no package taken, so
    // it stays, and is the evidence its package is verified with.
    let fourth = site_package("20240602_2015", &[("corregido.txt", b"cuarto envio")]);
    let sidecar = entrada.join("PREP_20240602_2015.zip.sha256");
    drop_file(
        &entrada,
        "PREP_20240602_2015.zip.sha256",
        corpus::sum_line(&fourth, "PREP_20240602_2015.zip").as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        sidecar.exists(),
        "a sidecar for no package taken was removed"
    );
    assert_eq!(events(&server, "evidence-late").len(), 1);
    drop_file(&entrada, "PREP_20240602_2015.zip", &fourth);
    assert_verified_with_sidecar(&server, 4, &fourth);
}

/// The packages taken before a crash are remembered at the next start: a sidecar put in the
/// folder meanwhile that gives the digest of the package taken last under its name is
/// journaled as that package's evidence, come late, and leaves the folder, so a corrected
/// package sent again under the name, package first, is not rejected for it.
#[test]
fn a_sidecar_come_late_is_known_after_a_crash_and_not_read_with_the_next_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("data"), &["--settle", "1s"]);
    let entrada = server.entrada();
    let name = "PREP_20240602_2000.zip";
    let first = site_package("20240602_2000", &[]);
    drop_file(&entrada, name, &first);
    server.wait_corte("20240602_2000");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while entrada.join(name).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the package taken stayed in the folder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    server.kill();
    let sum = corpus::sum_line(&first, name);
    let sidecar = entrada.join(format!("{name}.sha256"));
    drop_file(&entrada, &format!("{name}.sha256"), sum.as_bytes());
    server.restart();

    assert_late_evidence_taken(&server, &first, ("sidecar", &sum), &sidecar);

    // Corrected and sent again, package first: taken without evidence and published.
    let second = site_package("20240602_2000", &[("corregido.txt", b"segundo envio")]);
    drop_file(&entrada, name, &second);
    server.wait_received(2);
    let verified = wait_events(&server, "verified", 2);
    assert!(
        verified.iter().any(|e| e["package"] == sha256_hex(&second)),
        "{verified:#?}"
    );
    let rejected = events(&server, "rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");
    server.wait_published(2);
}

/// Waits for the one `evidence-late` event, of `package` by the intake folder with `text` as
/// its evidence of `kind` (`sidecar`, `signature`), and for that file, `evidence`, to leave
/// the folder.
fn assert_late_evidence_taken(
    server: &Server,
    package: &[u8],
    (kind, text): (&str, &str),
    evidence: &std::path::Path,
) {
    let late = wait_events(server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(package), "{late:#?}");
    let detail = &late[0]["detail"];
    assert_eq!(detail["channel"], "watch", "{detail}");
    assert_eq!(detail["matches"], true, "{detail}");
    assert_eq!(detail[kind], text, "{detail}");
    let file_name = evidence.file_name().unwrap().to_str().unwrap();
    assert_eq!(detail["evidence"], file_name, "{detail}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while evidence.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the {kind} come late stayed in the folder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The name of the corte [`signed_if_present_with_a_corte`] publishes.
const FIRST_NAME: &str = "PREP_20240602_2000.zip";

/// A server in `tmp` that checks signatures when they come (`evidence_signature =
/// "if-present"`, one key, a settle of 1 s), with the secret key, once it published
/// [`FIRST_NAME`], unsigned: the package returned.
fn signed_if_present_with_a_corte(tmp: &std::path::Path) -> (Server, minisign::SecretKey, Vec<u8>) {
    let (public, secret) = minisign_keys(&tmp.join("keys"));
    let server = Server::start(
        &tmp.join("data"),
        &[
            "--settle",
            "1s",
            "--evidence-signature",
            "if-present",
            "--minisign-keys",
            public.to_str().unwrap(),
        ],
    );
    let first = site_package("20240602_2000", &[]);
    drop_file(&server.entrada(), FIRST_NAME, &first);
    server.wait_corte("20240602_2000");
    (server, secret, first)
}

/// rsync and `mput` send `X.zip` before `X.zip.minisig`: under `evidence_signature =
/// "if-present"` the package is taken at once, without it. The signature that comes after
/// and verifies the package with a configured key is journaled as that package's evidence,
/// come late, and leaves the folder: a corrected package sent again under the same name,
/// unsigned, is published, not rejected for it. A signature that does not verify the package
/// taken (one by a key not configured, one of the next upload of the name, sent first) stays:
/// the latter is what its package is verified with.
#[test]
fn a_signature_sent_after_its_package_is_journaled_and_not_read_with_the_next_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, secret, first) = signed_if_present_with_a_corte(tmp.path());
    let (_, other_secret) = minisign_keys(&tmp.path().join("other-keys"));
    let entrada = server.entrada();
    let name = FIRST_NAME;
    let minisig = format!("{name}.minisig");
    let signature = minisign_signature(&secret, name, &first);
    drop_file(&entrada, &minisig, signature.as_bytes());

    assert_late_evidence_taken(
        &server,
        &first,
        ("signature", &signature),
        &entrada.join(&minisig),
    );

    // Corrected and sent again under the name, unsigned: published, not rejected.
    let second = site_package("20240602_2000", &[("corregido.txt", b"segundo envio")]);
    drop_file(&entrada, name, &second);
    server.wait_received(2);
    server.wait_published(2);
    let rejected = events(&server, "rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");

    // A signature of the package taken, by a key that is not configured: it verifies
    // nothing, and stays.
    let stranger = entrada.join(&minisig);
    drop_file(
        &entrada,
        &minisig,
        minisign_signature(&other_secret, name, &second).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(stranger.exists(), "a signature by another key was removed");
    std::fs::remove_file(&stranger).unwrap();

    // A signature for the next upload of the name, sent first: it does not verify the package
    // taken, so it stays, and is the evidence its package is verified with.
    let third = site_package("20240602_2000", &[("corregido.txt", b"tercer envio")]);
    drop_file(
        &entrada,
        &minisig,
        minisign_signature(&secret, name, &third).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        entrada.join(&minisig).exists(),
        "a signature of no package taken was removed"
    );
    assert_eq!(events(&server, "evidence-late").len(), 1);
    drop_file(&entrada, name, &third);
    assert_verified_with_signature(&server, 3, &third);
    assert!(events(&server, "rejected").is_empty());
}

/// The institute sends a corte again because its first upload lacked the signature: the same
/// bytes, now with a `.minisig` beside them. The package is a duplicate and nothing live
/// changes, but the evidence that came with it is not dropped with it: a signature that
/// verifies it is journaled as its evidence (`evidence-late`, whole), and a sidecar that gives
/// another digest is journaled, whole and as not matching, on the `duplicate` entry.
#[test]
fn evidence_sent_again_with_a_package_already_published_is_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, secret, first) = signed_if_present_with_a_corte(tmp.path());
    let entrada = server.entrada();
    let name = FIRST_NAME;

    let signature = minisign_signature(&secret, name, &first);
    drop_file(&entrada, &format!("{name}.minisig"), signature.as_bytes());
    drop_file(&entrada, name, &first);
    let duplicate = wait_events(&server, "duplicate", 1);
    assert_eq!(
        duplicate[0]["package"],
        sha256_hex(&first),
        "{duplicate:#?}"
    );
    let late = wait_events(&server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(&first), "{late:#?}");
    let detail = &late[0]["detail"];
    assert_eq!(detail["channel"], "watch", "{detail}");
    assert_eq!(detail["matches"], true, "{detail}");
    assert_eq!(detail["signature"], signature.as_str(), "{detail}");
    assert_eq!(detail["evidence"], format!("{name}.minisig"), "{detail}");

    // Sent once more with a sidecar that gives another digest: said on the duplicate entry,
    // whole, and never taken for the package's evidence.
    let wrong = corpus::sum_line(b"otros bytes", name);
    drop_file(&entrada, &format!("{name}.sha256"), wrong.as_bytes());
    drop_file(&entrada, name, &first);
    let duplicate = wait_events(&server, "duplicate", 2);
    let sidecar = (duplicate.iter())
        .flat_map(|d| d["detail"]["evidence"].as_array().into_iter().flatten())
        .find(|e| e["evidence"] == format!("{name}.sha256"))
        .unwrap_or_else(|| panic!("{duplicate:#?}"));
    assert_eq!(sidecar["matches"], false, "{sidecar}");
    assert_eq!(sidecar["sidecar"], wrong.as_str(), "{sidecar}");
    assert_eq!(events(&server, "evidence-late").len(), 1);
    assert_eq!(server.status()["counts"]["published"], 1);
    assert!(events(&server, "rejected").is_empty());
}

/// A signature sent with a package already published, to a server with no `minisign_keys`:
/// nothing can check it, so it is neither evidence come late nor a mismatch; the duplicate
/// entry keeps it whole with `"matches": null` and says why.
#[test]
fn a_signature_sent_again_where_no_key_can_check_it_is_kept_whole_on_the_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--settle", "1s"]);
    let entrada = server.entrada();
    let name = FIRST_NAME;
    let first = site_package("20240602_2000", &[]);
    drop_file(&entrada, name, &first);
    server.wait_corte("20240602_2000");
    let (_, secret) = minisign_keys(&tmp.path().join("keys"));
    let signature = minisign_signature(&secret, name, &first);
    drop_file(&entrada, &format!("{name}.minisig"), signature.as_bytes());
    drop_file(&entrada, name, &first);
    let duplicate = wait_events(&server, "duplicate", 1);
    let said = &duplicate[0]["detail"]["evidence"][0];
    assert_eq!(
        said["evidence"],
        format!("{name}.minisig"),
        "{duplicate:#?}"
    );
    // Present and null: not left out.
    assert_eq!(
        said.get("matches"),
        Some(&serde_json::Value::Null),
        "{said}"
    );
    assert_eq!(said["signature"], signature.as_str(), "{said}");
    assert!(
        said["reason"]
            .as_str()
            .is_some_and(|r| r.contains("minisign_keys")),
        "{said}"
    );
    assert!(events(&server, "evidence-late").is_empty());
    assert_eq!(server.status()["counts"]["published"], 1);
    assert!(events(&server, "rejected").is_empty());
}

/// A sidecar written while its package is being taken (after the package was read, with no
/// evidence beside it) is not removed with the package, unread: it stays, and is journaled
/// as the package's evidence come late.
#[test]
fn a_sidecar_written_while_its_package_is_taken_is_not_removed_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &["--settle", "1s"]);
    let entrada = server.entrada();
    let name = "PREP_20240602_2000.zip";
    // Large enough that verifying and publishing it takes a while after it is received.
    let pkg = site_package("20240602_2000", &[("pad.bin", &corpus::noise(40_000_000))]);
    drop_file(&entrada, name, &pkg);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.status()["counts"]["received"] != 1 {
        assert!(std::time::Instant::now() < deadline, "never received");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sum = corpus::sum_line(&pkg, name);
    drop_file(&entrada, &format!("{name}.sha256"), sum.as_bytes());
    server.wait_corte("20240602_2000");
    let late = wait_events(&server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(&pkg), "{late:#?}");
    assert_eq!(late[0]["detail"]["sidecar"], sum.as_str());
}

/// The intake folder made unreadable to the server while it serves (an `rsync -a dir/` that
/// gives it the mode of the institute's own folder, a `chmod`): nothing can be taken from it,
/// and that is said once, not left for the operator to find out from a corte that never
/// comes. Readable again, what was dropped meanwhile is taken.
#[test]
fn an_intake_folder_the_server_cannot_read_is_said_once() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_bound_by_permissions(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let mode = |m| std::fs::set_permissions(&entrada, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o000);
    drop_file(
        &entrada,
        "20240602_2000_PREP.zip",
        &site_package("20240602_2000", &[]),
    );
    let errors = wait_events(&server, "intake-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("cannot be read by this server")
            && error.contains("let this server's user read it"),
        "{errors:#?}"
    );
    // Many rescans (one a second) later, still said once.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(events(&server, "intake-error").len(), 1);
    assert_eq!(server.status()["counts"]["received"], 0);

    mode(0o755);
    server.wait_corte("20240602_2000");
    assert_eq!(events(&server, "intake-error").len(), 1);

    // Listed but not searched: no file in it can be looked at, so neither can be taken.
    mode(0o600);
    drop_file(
        &entrada,
        "20240602_2015_PREP.zip",
        &site_package("20240602_2015", &[]),
    );
    wait_events(&server, "intake-error", 2);
    mode(0o755);
    server.wait_corte("20240602_2015");
    assert_eq!(events(&server, "intake-error").len(), 2);
}

/// A sidecar sent with its package that this server cannot open (made under a umask of 077
/// and uploaded keeping its mode) is not taken for absent: the package is not published
/// unchecked by it, but stays, said once, until the sidecar can be read, and is then checked
/// against it.
#[test]
fn a_package_whose_sidecar_cannot_be_opened_is_not_taken_without_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_bound_by_permissions(&tmp.path().join("data"), &[]);
    let entrada = server.entrada();
    let name = "20240602_2000_PREP.zip";
    // It gives the digest of other bytes: read, it refuses the package.
    let sidecar = entrada.join(format!("{name}.sha256"));
    std::fs::write(&sidecar, corpus::sum_line(b"otro paquete", name)).unwrap();
    let mode = |m| std::fs::set_permissions(&sidecar, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o000);
    drop_file(&entrada, name, &site_package("20240602_2000", &[]));

    let errors = wait_events(&server, "intake-error", 1);
    let error = errors[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "{name}.sha256 in the intake folder cannot be opened"
        )),
        "{errors:#?}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.status()["counts"]["received"], 0);
    assert_eq!(server.live_corte(), None);
    assert_eq!(intake_errors(&server, name).len(), 1);

    // Readable, it is read with its package, which it refuses.
    mode(0o644);
    let rejected = wait_events(&server, "rejected", 1);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(server.live_corte(), None);
}

/// A held package (its corte ahead of the clock: verified, archived, waiting for an operator)
/// sent again with evidence: it keeps the evidence it was verified with and stays held. A
/// signature that verifies it is journaled as its evidence (`evidence-late`, whole), not
/// lost; a sidecar that gives another digest is journaled, whole, as a warning, and does not
/// turn the held package into a rejected one.
#[test]
fn evidence_sent_again_with_a_held_package_is_journaled_and_does_not_reject_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (public, secret) = minisign_keys(&tmp.path().join("keys"));
    let data = tmp.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--corte-future-margin",
            "5m",
            "--evidence-signature",
            "if-present",
            "--minisign-keys",
            public.to_str().unwrap(),
        ],
    );
    let entrada = server.entrada();
    let name = "PREP_20990602_2000.zip";
    let pkg = site_package("20990602_2000", &[]);
    drop_file(&entrada, name, &pkg);
    wait_events(&server, "held", 1);

    let signature = minisign_signature(&secret, name, &pkg);
    drop_file(&entrada, &format!("{name}.minisig"), signature.as_bytes());
    drop_file(&entrada, name, &pkg);
    wait_events(&server, "held", 2);
    let late = wait_events(&server, "evidence-late", 1);
    assert_eq!(late[0]["package"], sha256_hex(&pkg), "{late:#?}");
    assert_eq!(
        late[0]["detail"]["signature"],
        signature.as_str(),
        "{late:#?}"
    );
    let verified = events(&server, "verified");
    assert!(
        (verified.iter()).all(|v| v["detail"]["evidence"]["signature"] == "absent"),
        "verified with a signature the archive does not keep: {verified:#?}"
    );

    let wrong = corpus::sum_line(b"otros bytes", name);
    drop_file(&entrada, &format!("{name}.sha256"), wrong.as_bytes());
    drop_file(&entrada, name, &pkg);
    wait_events(&server, "held", 3);
    assert!(events(&server, "rejected").is_empty());
    let warnings = events(&server, "warning");
    let said = (warnings.iter())
        .filter_map(|w| w["detail"]["evidence"].as_array())
        .flatten()
        .find(|e| e["evidence"] == format!("{name}.sha256"))
        .unwrap_or_else(|| panic!("{warnings:#?}"));
    assert_eq!(said["matches"], false, "{said}");
    assert_eq!(said["sidecar"], wrong.as_str(), "{said}");
    assert_eq!(server.status()["counts"]["held"], 1);
}
