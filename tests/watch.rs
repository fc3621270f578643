//! The watched folder takes a file written in place as soon as its `.sha256` sidecar arrives
//! after it, and never because of a sidecar written before the file was finished.

mod support;

use std::time::Duration;

use support::*;

fn sidecar(bytes: &[u8], name: &str) -> String {
    use sha2::Digest;
    format!("{}  {name}\n", hex::encode(sha2::Sha256::digest(bytes)))
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
