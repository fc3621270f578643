//! The archive changed on disk behind the server's back: a byte written into an archived
//! package, a link or a FIFO put where one is kept. The public never gets other bytes under a
//! package's name and ETag, nothing put in the archive makes the server read what a link
//! points to, and a start still serves what is intact.

use std::path::{Path, PathBuf};

use crate::support::*;

const DATA: &str = "20210601_1852_PREP_CAMP.zip";

/// Where the data folder `data` keeps the verified package `bytes`.
fn archived(data: &Path, bytes: &[u8]) -> PathBuf {
    let sha = sha256_hex(bytes);
    data.join("archivo").join(&sha[..2]).join(sha)
}

#[test]
fn a_download_changed_in_the_archive_while_serving_is_refused_never_sent_as_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let real = std::fs::read(real_fixture(DATA)).unwrap();
    drop_file(&server.entrada(), DATA, &real);
    server.wait_corte("20210601_1852");
    let url = server.url(&format!("/datos/{DATA}"));
    let kept = archived(&server.data, &real);
    assert!(curl(&url, &[]).body == real);

    // A link to a secret of this machine in place of the archived zip.
    let secret = dir.path().join("secreto.key");
    std::fs::write(&secret, b"-----BEGIN PRIVATE KEY----- not for the public").unwrap();
    let aside = dir.path().join("apartado.zip");
    std::fs::rename(&kept, &aside).unwrap();
    std::os::unix::fs::symlink(&secret, &kept).unwrap();
    // A visitor repeating the request gets 500 each time, and the log says it once.
    for _ in 0..5 {
        let r = curl(&url, &[]);
        assert_eq!(r.status, 500, "a link is not followed: {}", r.text());
        assert!(
            !r.text().contains("PRIVATE KEY"),
            "the link's target was served: {}",
            r.text()
        );
    }
    assert_eq!(
        server.log().matches("symbolic link").count(),
        1,
        "{}",
        server.log()
    );

    // The file put back as it was: served again, and said.
    std::fs::remove_file(&kept).unwrap();
    std::fs::rename(&aside, &kept).unwrap();
    let r = curl(&url, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == real);
    assert!(
        server
            .log()
            .contains("is the verified file again, and sent"),
        "{}",
        server.log()
    );

    // One byte written into it, in place: the same size, other bytes.
    let mut damaged = real.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&kept, &damaged).unwrap();
    for _ in 0..5 {
        let r = curl(&url, &[]);
        assert_eq!(
            r.status, 500,
            "bytes the package did not have are not served under its ETag"
        );
        assert!(r.body != damaged);
    }
    // A new run of failures: said again, once.
    assert_eq!(
        server
            .log()
            .matches("changed on disk since its hash was checked")
            .count(),
        1,
        "{}",
        server.log()
    );

    // The next start checks every hash: the damaged download is not offered, and the site
    // built from what is intact is served.
    let mut server = server;
    server.restart();
    assert_ne!(curl(&url, &[]).status, 200);
    assert!(warned(&server, "damaged"), "{}", server.log());
}

#[test]
fn a_link_to_an_endless_file_in_the_archive_does_not_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("d"), &[]);
    let first = site_package("20240602_2100", &[]);
    let second = site_package("20240602_2115", &[]);
    drop_file(&server.entrada(), "20240602_2100_PREP_SITIO.zip", &first);
    server.wait_corte("20240602_2100");
    drop_file(&server.entrada(), "20240602_2115_PREP_SITIO.zip", &second);
    server.wait_corte("20240602_2115");
    server.stop();

    // The live corte's package replaced by a link to a file that never ends.
    let kept = archived(&server.data, &second);
    std::fs::remove_file(&kept).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &kept).unwrap();
    let started = std::time::Instant::now();
    server.launch();
    server.wait_ready();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the start took {:?}",
        started.elapsed()
    );
    assert_eq!(server.live_corte().as_deref(), Some("20240602_2100"));
    let warnings = events(&server, "warning");
    assert!(
        warnings.iter().any(|w| {
            let text = w["detail"]["warning"].as_str().unwrap_or("");
            text.contains("cannot rebuild corte 20240602_2115") && text.contains("symbolic link")
        }),
        "{warnings:#?}"
    );
    // The operator is told, not only the journal: the live corte is behind the last one
    // published, until a new corte goes live.
    let behind = &server.status()["live_behind"];
    assert_eq!(behind["last_published"], "20240602_2115", "{behind:#}");
    assert_eq!(behind["serving"], "20240602_2100", "{behind:#}");
    assert_eq!(behind["not_rebuilt"], 1, "{behind:#}");
    assert!(
        behind["error"]
            .as_str()
            .unwrap_or("")
            .contains("symbolic link"),
        "{behind:#}"
    );
    let page = curl(&server.admin("/"), &[]).text();
    assert!(
        page.contains(
            "The live corte is not the last one published: at start 1 publication(s) could \
             not be rebuilt from the archive, the last of them corte 20240602_2115"
        ),
        "{page}"
    );
    let third = site_package("20240602_2130", &[]);
    drop_file(&server.entrada(), "20240602_2130_PREP_SITIO.zip", &third);
    server.wait_corte("20240602_2130");
    assert_eq!(server.status()["live_behind"], serde_json::Value::Null);
    assert!(
        !curl(&server.admin("/"), &[])
            .text()
            .contains("is not the last one published")
    );
}
