//! A fault on this machine's side (here an archived copy that cannot be read) is never told
//! to the institute as a rejection: `ingest` exits 2 naming our side, the admin upload
//! answers 500, the watched folder keeps the file and takes it once the fault is repaired.
//! (Pull: `tests/pull.rs`.)

use std::path::{Path, PathBuf};

use crate::support::*;

const NAME: &str = "20240602_2100_PREP_SITIO.zip";

/// `difusor history --json` of a data folder, no server needed.
fn journal(data: &Path) -> serde_json::Value {
    let out = difusor()
        .args(["history", "--json", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A package written to a file beside a data folder whose archive cannot keep it.
struct Broken {
    /// The data folder.
    data: PathBuf,
    /// The package file.
    pkg: PathBuf,
    /// What stands where its verified copy would go; removing it repairs the archive.
    broken: PathBuf,
}

fn broken_archive_for_a_package(dir: &Path) -> Broken {
    let data = dir.join("d");
    let bytes = site_package("20240602_2100", &[]);
    let pkg = dir.join(NAME);
    std::fs::write(&pkg, &bytes).unwrap();
    let broken = break_archive_for(&data, &bytes);
    Broken { data, pkg, broken }
}

#[test]
fn ingest_exits_2_naming_our_side_and_the_package_is_taken_once_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let Broken { data, pkg, broken } = broken_archive_for_a_package(dir.path());
    let ingest = || ingest_without_server(&pkg, &data);

    let out = ingest();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "failed", "{v}");
    assert_eq!(v["fault"], "ours", "{v}");
    assert!(
        stderr.contains("on this server's side, not of the package"),
        "{stderr}"
    );
    let j = journal(&data);
    assert!(of_kind(&j, "rejected").is_empty(), "{j:#}");
    let errors = of_kind(&j, "intake-error");
    assert_eq!(errors.len(), 1, "{j:#}");
    assert_eq!(errors[0]["detail"]["fault"], "ours");
    assert_eq!(errors[0]["detail"]["channel"], "cli");

    // Repaired: the same package is taken as if nothing had happened.
    std::fs::remove_dir(&broken).unwrap();
    let out = ingest();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "published", "{v}");
}

#[test]
fn an_admin_upload_gets_a_server_error_not_a_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let Broken { data, pkg, broken } = broken_archive_for_a_package(dir.path());
    let server = Server::start(&data, &[]);
    let upload = || {
        curl(
            &server.admin("/ingest"),
            &[
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                &format!("X-Difusor-Name: {NAME}"),
                "--data-binary",
                &format!("@{}", pkg.display()),
            ],
        )
    };

    let r = upload();
    assert_eq!(r.status, 500, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["outcome"], "failed", "{v}");
    assert_eq!(v["fault"], "ours", "{v}");
    let status = server.status();
    assert_eq!(status["counts"]["rejected"], 0, "{status:#}");
    assert!(status["live"]["corte"].is_null(), "{status:#}");
    assert_eq!(
        wait_events(&server, "intake-error", 1)[0]["detail"]["fault"],
        "ours"
    );

    std::fs::remove_dir(&broken).unwrap();
    let r = upload();
    assert_eq!(r.status, 200, "{}", r.text());
    server.wait_corte("20240602_2100");
}

#[test]
fn the_watched_folder_keeps_the_file_and_publishes_it_once_the_fault_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let bytes = site_package("20240602_2100", &[]);
    let broken = break_archive_for(&data, &bytes);
    let server = Server::start(&data, &[]);
    drop_file(&server.entrada(), NAME, &bytes);

    let errors = wait_events(&server, "intake-error", 1);
    assert_eq!(errors[0]["detail"]["fault"], "ours", "{errors:?}");
    assert_eq!(errors[0]["detail"]["channel"], "watch", "{errors:?}");
    assert!(events(&server, "rejected").is_empty());
    let left: Vec<String> = std::fs::read_dir(server.entrada())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [NAME], "kept as it is, not set aside");
    assert!(server.live_corte().is_none());

    // Repaired: taken again without anyone touching the file.
    std::fs::remove_dir(&broken).unwrap();
    server.wait_corte("20240602_2100");
    assert!(
        !server.entrada().join(NAME).exists(),
        "archived, so it left"
    );
    assert!(events(&server, "rejected").is_empty());
}
