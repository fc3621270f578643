//! `difusor inspect` through the CLI, and the inspection of data packages on arrival through
//! a running server: a package whose summary line contradicts its rows is named, loudly.

mod support;

use std::io::{Read, Write};
use std::process::Output;

use support::*;

const SONORA: &str = "SON_GOB_2021.csv";
const CAMPECHE: &str = "20210601_1852_PREP_CAMP.zip";

fn inspect(args: &[&str]) -> Output {
    difusor().arg("inspect").args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `bytes` into `dir` as `name` and returns its path as text.
fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// The real Sonora file with one more vote in its first acta, its total kept true to its
/// cells: only the summary line gives it away.
fn sonora_with_one_vote_changed() -> Vec<u8> {
    let real = std::fs::read_to_string(real_fixture(SONORA)).unwrap();
    let row = ",430,131,184,70,7,2,0,0,36,430,430,554,";
    assert_eq!(
        real.matches(row).count(),
        1,
        "the first acta is where it was"
    );
    real.replacen(row, ",430,132,184,70,7,2,0,0,36,430,431,554,", 1)
        .into_bytes()
}

/// The real Sonora file without one counted acta.
fn sonora_with_one_row_removed() -> Vec<u8> {
    let real = std::fs::read_to_string(real_fixture(SONORA)).unwrap();
    let mut lines: Vec<&str> = real.split_inclusive('\n').collect();
    assert!(lines[6].starts_with("'260001B0100,"), "{}", lines[6]);
    lines.remove(6);
    lines.concat().into_bytes()
}

/// The real Campeche package with `from` replaced by `to` in its governor CSV.
fn campeche_with(from: &str, to: &str) -> Vec<u8> {
    let real = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    let mut outer = zip::ZipArchive::new(std::io::Cursor::new(real)).unwrap();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..outer.len() {
        let mut f = outer.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        if name == "20210601_1852_PREP_GOB_CAMP.zip" {
            let mut inner = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for j in 0..inner.len() {
                let mut m = inner.by_index(j).unwrap();
                let mut b = Vec::new();
                m.read_to_end(&mut b).unwrap();
                let n = m.name().unwrap().to_string();
                if n == "CAMP_GOB_2021.csv" {
                    let text = String::from_utf8(b).unwrap();
                    assert!(text.contains(from));
                    b = text.replacen(from, to, 1).into_bytes();
                }
                files.push((n, b));
            }
            let refs: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(n, b)| (n.as_str(), b.as_slice()))
                .collect();
            bytes = zip_bytes(&refs);
        }
        members.push((name, bytes));
    }
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_bytes(&refs)
}

#[test]
fn the_real_package_and_csv_are_consistent() {
    let out = inspect(&[real_fixture(CAMPECHE).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for title in [
        "GUBERNATURA",
        "DIPUTACIONES LOCALES",
        "AYUNTAMIENTOS",
        "JUNTAS",
    ] {
        assert!(text.contains(title), "{title} missing: {text}");
    }
    assert!(text.contains("01/06/2021 18:52 (UTC-5)"));
    assert!(text.contains("CONSISTENT"));

    let out = inspect(&[real_fixture(SONORA).to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["elections"][0];
    assert_eq!(e["rows"], 3772);
    let summary = e["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 13);
    assert!(summary.iter().all(|c| c["equal"] == true), "{summary:?}");
    let total = summary
        .iter()
        .find(|c| c["field"] == "TOTAL_VOTOS_C_CS")
        .unwrap();
    assert_eq!(total["recomputed"], "814690");
    assert_eq!(v["corte"]["utc"], "2021-06-07T20:19:00Z");
}

#[test]
fn an_inner_zip_is_inspected_too() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    let mut outer = zip::ZipArchive::new(std::io::Cursor::new(real)).unwrap();
    let mut inner = Vec::new();
    outer
        .by_name("20210601_1852_PREP_JUNTAS_CAMP.zip")
        .unwrap()
        .read_to_end(&mut inner)
        .unwrap();
    let path = write(dir.path(), "20210601_1852_PREP_JUNTAS_CAMP.zip", &inner);
    let out = inspect(&[&path, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["elections"].as_array().unwrap().len(), 1);
    assert_eq!(v["elections"][0]["title"], "JUNTAS");
}

#[test]
fn one_changed_vote_exits_1_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SONORA, &sonora_with_one_vote_changed());
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("INCONSISTENT"), "{text}");
    assert!(
        text.contains("TOTAL_VOTOS_C_CS declared \"814690\", recomputed 814691"),
        "{text}"
    );
}

#[test]
fn one_removed_row_exits_1_and_names_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SONORA, &sonora_with_one_row_removed());
    let out = inspect(&[&path, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let differing: Vec<&str> = v["elections"][0]["summary"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["equal"] == false)
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for field in [
        "ACTAS_ESPERADAS",
        "ACTAS_CONTABILIZADAS",
        "TOTAL_VOTOS_C_CS",
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
    ] {
        assert!(differing.contains(&field), "{field} not in {differing:?}");
    }
}

#[test]
fn unreadable_input_exits_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "basura.csv", b"\x00\x01 not, a, PREP file\n");
    let out = inspect(&[&garbage]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("basura.csv") && err.contains("not a PREP results CSV"),
        "{err}"
    );

    let real = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    let cut = write(
        dir.path(),
        "20210601_1852_PREP_CAMP.zip",
        &real[..real.len() / 2],
    );
    let out = inspect(&[&cut]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));

    let out = inspect(&[dir.path().join("missing.csv").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_inconsistent_data_package_is_a_journal_warning_and_is_still_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let bad = campeche_with("\n1190,0,0,", "\n1191,0,0,");
    drop_file(&server.entrada(), CAMPECHE, &bad);
    server.wait_corte("20210601_1852");
    let status = server.status();
    assert_eq!(status["counts"]["inconsistent"], 1, "{status:#}");
    let warnings = events(&server, "warning");
    let summary: Vec<_> = warnings
        .iter()
        .filter(|w| w["detail"]["check"] == "summary")
        .collect();
    assert_eq!(summary.len(), 1, "{warnings:?}");
    let text = summary[0]["detail"]["warning"].as_str().unwrap();
    assert!(
        text.contains("CAMP_GOB_2021.csv (GUBERNATURA)")
            && text.contains("ACTAS_ESPERADAS declared \"1191\", recomputed 1190"),
        "{text}"
    );
}

#[test]
fn a_consistent_data_package_gives_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let real = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    drop_file(&server.entrada(), CAMPECHE, &real);
    server.wait_corte("20210601_1852");
    assert_eq!(server.status()["counts"]["inconsistent"], 0);
    assert!(
        events(&server, "warning")
            .iter()
            .all(|w| w["detail"]["check"] != "summary")
    );
}

#[test]
fn reject_inconsistent_turns_the_difference_into_a_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let bad = campeche_with("\n1190,0,0,", "\n1191,0,0,");
    drop_file(&server.entrada(), CAMPECHE, &bad);
    server.wait_status("the rejection", |s| s["counts"]["rejected"] == 1);
    let status = server.status();
    assert_eq!(status["live"], serde_json::Value::Null, "nothing published");
    assert_eq!(status["counts"]["inconsistent"], 1);
    let rejected = events(&server, "rejected");
    let reason = rejected[0]["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("ACTAS_ESPERADAS"), "{reason}");

    // The same package through `ingest`: exit status 1 and the reason.
    let file = dir.path().join("20210601_1853_PREP_CAMP.zip");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(&campeche_with("\n1190,0,0,", "\n1190,1,0,"))
        .unwrap();
    let out = server.run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ACTAS_REGISTRADAS"),
        "{}",
        stdout(&out)
    );
}
