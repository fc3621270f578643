//! `difusor inspect` through the CLI, and the inspection of data packages on arrival through
//! a running server: a package whose summary line contradicts its rows under every known
//! definition is named, loudly; one true to its rows under its institute's own definitions
//! is not.

use std::io::{Read, Write};
use std::process::Output;

use crate::support::*;

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

/// `difusor inspect /dev/stdin` with `bytes` written into its stdin, a pipe.
fn inspect_piped(bytes: &[u8]) -> Output {
    let mut child = difusor()
        .args(["inspect", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = bytes.to_vec();
    // A refusal closes the pipe before all is written: that write fails, as it should.
    let writer = std::thread::spawn(move || drop(stdin.write_all(&bytes)));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A CSV through a pipe (`unzip -p … | difusor inspect /dev/stdin`) is read once, whole, and
/// reported as from a file; a package through one, which cannot be opened from a pipe, is
/// refused saying so, not blamed on its bytes.
#[test]
fn a_csv_through_a_pipe_is_inspected_whole_and_a_package_through_one_is_refused_saying_so() {
    let csv = std::fs::read(real_fixture(SONORA)).unwrap();
    let out = inspect_piped(&csv);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let text = stdout(&out);
    assert!(text.contains("3772 actas · UTF-8 with BOM"), "{text}");
    assert!(text.contains("CONSISTENT"), "{text}");

    let package = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    let out = inspect_piped(&package);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/stdin is a FIFO (named pipe), not a file")
            && err.contains("save it to a file first"),
        "{err}"
    );
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
    assert_eq!(total["variant"], "standard");
    assert_eq!(v["corte"]["utc"], "2021-06-07T20:19:00Z");
    let explained = e["definitions"]["explained_by"].as_array().unwrap();
    assert!(
        explained.contains(&"iee-sonora-2021".into()),
        "{explained:?}"
    );
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

/// The evidence beside a package named on the command line is read as the operator gave it:
/// through a link, and never taken for absent when it is there but cannot be read.
#[test]
fn evidence_beside_a_package_is_checked_through_a_link_and_never_taken_for_absent() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(real_fixture(CAMPECHE)).unwrap();
    let pkg = write(dir.path(), CAMPECHE, &bytes);
    let sidecar = dir.path().join(format!("{CAMPECHE}.sha256"));
    let kept = |name: &str, digest: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{digest}  {CAMPECHE}\n")).unwrap();
        let _ = std::fs::remove_file(&sidecar);
        std::os::unix::fs::symlink(&path, &sidecar).unwrap();
    };
    // A linked sidecar naming other bytes: the package is not taken for them.
    kept("otro.sha256", &"0".repeat(64));
    let out = inspect(&[&pkg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{err}", stdout(&out));
    assert!(
        err.contains("cannot open") && err.contains(CAMPECHE),
        "{err}"
    );
    // Linked and true: inspected.
    kept("bueno.sha256", &sha256_hex(&bytes));
    let out = inspect(&[&pkg]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // There but no file: refused naming it, not inspected as if it had no evidence.
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::create_dir(&sidecar).unwrap();
    let out = inspect(&[&pkg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{err}", stdout(&out));
    assert!(
        err.contains(&sidecar.display().to_string()) && err.contains("a folder"),
        "{err}"
    );
}

#[test]
fn unreadable_input_exits_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "basura.csv", b"\x00\x01 not, a, PREP file\n");
    let out = inspect(&[&garbage]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("basura.csv") && err.contains("not a PREP results CSV"),
        "{err}"
    );
    // With --json, the report says the same on stdout.
    let (code, v) = inspect_json(std::path::Path::new(&garbage), &[]);
    assert_eq!(code, Some(2));
    assert_eq!(v["elections"], serde_json::json!([]));
    assert_eq!(v["unreadable"][0]["file"], garbage.as_str(), "{v:#}");
    assert!(
        v["unreadable"][0]["what"]
            .as_str()
            .unwrap()
            .contains("not a PREP results CSV"),
        "{v:#}"
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

    // What is sent by mistake is named: a RAR under a zip's name, an error page under a CSV's.
    let rar = write(
        dir.path(),
        "20210601_1852_PREP_CAMP.zip",
        b"Rar!\x1a\x07\x01\x00\x33\x92\xb5\xe5\x0a\x01\x05",
    );
    let page = write(
        dir.path(),
        "CAMP_GOB_2021.csv",
        b"<!DOCTYPE html>\n<html><title>404 Not Found</title></html>\n",
    );
    for (file, what) in [(&rar, "it is a RAR archive"), (&page, "it is an HTML page")] {
        let out = inspect(&[file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file.as_str()) && err.contains(what), "{err}");
    }
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

/// A package of two elections: Campeche's governorship with `ACTAS_ESPERADAS` one too many,
/// and a cómputos file by casilla (IEQROO's shape) that is no PREP results.
fn package_with_an_unreadable_csv() -> Vec<u8> {
    let off = campeche_cut_with("\n1,2,1,1,100.0000,", "\n2,2,1,1,100.0000,");
    let computos = "sep=|\nAYUNTAMIENTOS\n10/06/2024 14:45 (UTC-5)\n\n\
        CLAVE_CASILLA|SECCION|TIPO_CASILLA|PAN|NO_REGISTRADAS|NULOS|TOTAL|LISTA_NOMINAL\n\
        =\"230004B0100\"|=\"0004\"|B|28|0|8|36|716\n";
    zip_bytes(&[
        ("CAMP_GOB_2021.csv", off.as_bytes()),
        ("QROO_AYUN_2024.csv", computos.as_bytes()),
    ])
}

#[test]
fn a_package_with_an_unreadable_csv_still_has_its_other_elections_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "20210607_2000_PREP.zip",
        &package_with_an_unreadable_csv(),
    );
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("CAMP_GOB_2021.csv (GUBERNATURA): ACTAS_ESPERADAS declared \"2\""),
        "{text}"
    );
    assert!(
        text.contains("NOT READ: 1 results CSV(s)")
            && text.contains("QROO_AYUN_2024.csv, line 5, column CONTABILIZADA: a cómputos file"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("difusor: QROO_AYUN_2024.csv, line 5, column CONTABILIZADA"),
        "{err}"
    );
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(2));
    assert_eq!(v["elections"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["elections"][0]["consistent"], false);
    let unreadable = &v["unreadable"][0];
    assert_eq!(
        (
            &unreadable["file"],
            &unreadable["line"],
            &unreadable["column"]
        ),
        (
            &"QROO_AYUN_2024.csv".into(),
            &5.into(),
            &"CONTABILIZADA".into()
        ),
        "{v:#}"
    );

    // On arrival: a warning for each, and the package is still published.
    let server = Server::start(&dir.path().join("d"), &[]);
    drop_file(
        &server.entrada(),
        "20210607_2000_PREP.zip",
        &package_with_an_unreadable_csv(),
    );
    server.wait_corte("20210607_2000");
    let warnings: Vec<String> = events(&server, "warning")
        .iter()
        .filter(|w| w["detail"]["check"] == "summary")
        .map(|w| w["detail"]["warning"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("cannot be read: QROO_AYUN_2024.csv")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("ACTAS_ESPERADAS declared \"2\"")),
        "{warnings:?}"
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

/// `difusor inspect --json PATH EXTRA…`: the exit status and the report.
fn inspect_json(path: &std::path::Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = inspect(&[&[path.to_str().unwrap(), "--json"][..], extra].concat());
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// The one election of a derived file's report, after checking that every known definition
/// together explains it (exit status 0) and that `institute`'s own definitions do.
fn derived_election(name: &str, institute: &str) -> serde_json::Value {
    election_explained_by(&derived_fixture(name), institute)
}

/// A cut of real rows kept with these tests (`tests/fixtures/PROVENANCE.md`).
fn cut_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// [`derived_election`] of the file at `path`.
fn election_explained_by(path: &std::path::Path, institute: &str) -> serde_json::Value {
    let name = path.display();
    let (code, v) = inspect_json(path, &[]);
    assert_eq!(code, Some(0), "{name}: {v:#}");
    let e = v["elections"][0].clone();
    assert_eq!(e["consistent"], true);
    assert!(
        e["definitions"]["explained_by"]
            .as_array()
            .unwrap()
            .contains(&institute.into()),
        "{name}: {:#}",
        e["definitions"]
    );
    let (code, pinned) = inspect_json(path, &["--reglas", institute]);
    assert_eq!(code, Some(0), "{name} --reglas {institute}: {pinned:#}");
    assert_eq!(pinned["elections"][0]["definitions"]["pinned"], institute);
    e
}

/// A summary field of an election's report.
fn field<'e>(e: &'e serde_json::Value, name: &str) -> &'e serde_json::Value {
    e["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == name)
        .unwrap_or_else(|| panic!("no {name} in {e:#}"))
}

/// The text report of `difusor inspect PATH --reglas REGLAS`, after checking it exits 1.
fn inconsistent_under(path: &std::path::Path, reglas: &str) -> String {
    let out = inspect(&[path.to_str().unwrap(), "--reglas", reglas]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    stdout(&out)
}

#[test]
fn campeche_2021_an_out_of_catalogue_row_written_contabilizada_0() {
    let e = derived_election("camp_fuera_catalogo_contabilizada0.csv", "ieec-2021");
    assert_eq!(field(&e, "ACTAS_FUERA_CATALOGO")["recomputed"], "1");
    assert_eq!(field(&e, "ACTAS_NO_CONTABILIZADAS")["recomputed"], "0");
    assert_eq!(field(&e, "ACTAS_CAPTURADAS")["recomputed"], "1");
    // Its date with microseconds is a date.
    assert_eq!(e["anomaly_count"], 0, "{:#}", e["anomalies"]);
    assert_eq!(e["latest"]["FECHA_HORA_ACOPIO"], "2021-06-07 11:15:00");
}

#[test]
fn ine_2023_todos_los_campos_vacios_is_an_inconsistency_and_cr_ends_lines() {
    let e = derived_election("ine2023_todos_los_campos_vacios.csv", "ine-2023");
    let incons = field(&e, "PORCENTAJE_ACTAS_INCONSISTENCIAS");
    assert_eq!(incons["recomputed"], "100.0000");
    assert_eq!(e["rows"], 1);
    assert_eq!(e["election"], "senaduria");
    assert_eq!(e["corte"]["utc"], "2023-02-20T17:05:00Z");
    let observation = &e["by_observation"][0];
    assert_eq!(observation["observation"], "['Todos los campos vacíos']");
    assert_eq!(observation["inconsistency"], true);
    // The hyphenated coalitions are coalitions.
    let votes = e["votes"].as_array().unwrap();
    let coalition = votes.iter().find(|v| v["column"] == "PAN-PRI-PRD").unwrap();
    assert_eq!(coalition["kind"], "coalition");
}

#[test]
fn quintana_roo_2019_a_special_casilla_of_one_row_adds_no_rp_acta() {
    let e = derived_election("qroo2019_dip_special_single_row.csv", "ieqroo-2019");
    assert_eq!(field(&e, "ACTAS_ESPERADAS")["recomputed"], "1");
    assert_eq!(
        e["title"], "DIPUTACIONES LOCALES",
        "the sep=| line is not the title"
    );
    assert_eq!(e["separator"], "|");
    assert_eq!(e["corte"]["written"], "2019/06/03 05:47 (UTC-5)");
    assert_eq!(e["corte"]["utc"], "2019-06-03T10:47:00Z");
    // Campeche's definitions expect the RP acta of that casilla.
    let path = derived_fixture("qroo2019_dip_special_single_row.csv");
    let text = inconsistent_under(&path, "ieec-2021");
    let line = text
        .lines()
        .find(|l| l.contains("ACTAS_ESPERADAS ") && l.contains("DIFFERENT"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("2 (rp-expected)"), "{line}");
}

#[test]
fn ine_2019_the_total_column_is_total_votos() {
    let e = derived_election("ine2019_pue_TOTAL_VOTOS_column.csv", "ine-2019");
    assert_eq!(field(&e, "TOTAL_VOTOS_C_CS")["recomputed"], "284");
    assert_eq!(e["encoding"], "Latin-1");
    assert_eq!(e["corte"]["written"], "3/6/2019 09:15 (UTC-5)");
    assert_eq!(e["anomaly_count"], 0, "{:#}", e["anomalies"]);
    assert_eq!(e["latest"]["FECHA_HORA_CAPTURA"], "2019-06-02 20:34:00");
}

#[test]
fn ine_2019_percentages_written_with_a_percent_sign() {
    let e = derived_election("ine2019_pue_thousands_and_percent_summary.csv", "ine-2019");
    let participation = field(&e, "PORCENTAJE_PARTICIPACION_CIUDADANA");
    assert_eq!(participation["declared"], "42.9003%");
    assert_eq!(participation["equal"], true);
}

#[test]
fn puebla_2018_a_dash_is_an_acta_not_yet_captured() {
    let e = derived_election("iee_pue2018_dash_means_not_captured.csv", "iee-puebla-2018");
    for name in [
        "ACTAS_ESPERADAS",
        "ACTAS_REGISTRADAS",
        "ACTAS_FUERA_CATALOGO",
    ] {
        assert_eq!(field(&e, name)["variant"], "dash-not-captured", "{name}");
    }
    assert_eq!(
        field(&e, "ACTAS_FUERA_CATALOGO")["seen_in"][0],
        "IEE Puebla 2018"
    );
    // INE reads the dash as out of the catalogue.
    let path = derived_fixture("iee_pue2018_dash_means_not_captured.csv");
    let text = inconsistent_under(&path, "ine-2019");
    assert!(text.contains("ACTAS_FUERA_CATALOGO"), "{text}");
}

/// IEE Puebla 2018 writes the observation of an acta whose fields are all empty `Todos los
/// campos vacio` (singular, no accent; INE writes `Todos los campos vacíos`), and counts it
/// among the inconsistencies: in its real files at the corte of 02/07/2018 20:00 (GitHub
/// `JuveCampos/Proyecto_Puebla`, `DatosPREP/`), PORCENTAJE_ACTAS_INCONSISTENCIAS is the actas
/// illegible, over the lista nominal or all empty, over the catalogue: 305 of 7,547 in AYUN
/// and DIP_LOC (4.0413), 308 of 7,548 in GOB (4.0805). The cut is AYUN's.
#[test]
fn puebla_2018_todos_los_campos_vacio_is_an_inconsistency() {
    let path = cut_fixture("iee_pue2018_todos_los_campos_vacio.csv");
    let e = election_explained_by(&path, "iee-puebla-2018");
    let incons = field(&e, "PORCENTAJE_ACTAS_INCONSISTENCIAS");
    assert_eq!(
        (&incons["recomputed"], &incons["variant"]),
        (&"33.3333".into(), &"dash-not-captured".into()),
        "{incons:#}"
    );
    let observations = e["by_observation"].as_array().unwrap();
    let vacio = observations
        .iter()
        .find(|o| o["observation"] == "Todos los campos vacio")
        .unwrap_or_else(|| panic!("{observations:#?}"));
    assert_eq!(vacio["inconsistency"], true, "{vacio:#}");
}

/// IEE Puebla 2018 leaves out of ACTAS_NO_CONTABILIZADAS an acta captured with CONTABILIZADA
/// `0` but no observation (its party cells still empty): in its real files at 02/07/2018
/// 20:00 (GitHub `JuveCampos/Proyecto_Puebla`, `DatosPREP/`) the field is the rows with `0`
/// less exactly those (AYUN 1,277 less 1, DIP_LOC 1,201 less 2, GOB 1,175 less 1), while
/// ACTAS_CAPTURADAS still counts them. The cut is AYUN's: a counted acta, one `Sin Acta` and
/// one `0` without observation.
#[test]
fn puebla_2018_an_acta_not_counted_without_observation_is_not_in_actas_no_contabilizadas() {
    let path = cut_fixture("iee_pue2018_zero_without_observation.csv");
    let e = election_explained_by(&path, "iee-puebla-2018");
    let not_counted = field(&e, "ACTAS_NO_CONTABILIZADAS");
    assert_eq!(
        (&not_counted["recomputed"], &not_counted["variant"]),
        (&"1".into(), &"not-counted-observed".into()),
        "{not_counted:#}"
    );
    assert_eq!(field(&e, "ACTAS_CAPTURADAS")["recomputed"], "3");
    // Every other institute counts it among the actas not counted.
    let text = inconsistent_under(&path, "ine-2019");
    assert!(
        text.contains("ACTAS_NO_CONTABILIZADAS declared \"1\", recomputed 2"),
        "{text}"
    );
}

/// INE 2019's extraordinary AYUN of Puebla names nine coalitions twice in its column header
/// (`C_PRD_MC_CPP` in columns 28 and 36, `C_PT_MORENA` in 49 and 55, …: each municipality's
/// alliance has its own), in its real file at the corte of 03/06/2019 09:15 (GitHub
/// `JuveCampos/Proyecto_Puebla`, `Extraordinaria 2019 Puebla/`). Each column's votes are its
/// own, and the report tells them apart by their column number: in the text where the name is
/// repeated, and in `--json` by every vote column's `position`, its `column` still the name
/// as written. The cut holds four of its rows, from three municipalities.
#[test]
fn ine_2019_coalitions_named_twice_are_told_apart_by_their_column() {
    let path = cut_fixture("ine2019_pue_ayun_coalitions_named_twice.csv");
    let out = inspect(&[path.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let row = |label: &str| {
        text.lines()
            .find(|l| l.contains(&format!("│ {label} ")))
            .map(|l| l.split('┆').map(str::trim).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row {label} in {text}"))
    };
    for (label, votes) in [
        ("C_PRD_MC_CPP (column 28)", "13"),
        ("C_PRD_MC_CPP (column 36)", "2"),
        ("C_PT_MORENA (column 49)", "6"),
        ("C_PT_MORENA (column 55)", "18"),
        ("C_PAN_CPP (column 39)", "1"),
        ("C_PAN_CPP (column 58)", "3"),
    ] {
        assert_eq!(row(label)[2], votes, "{label}");
    }
    // A name the header does not repeat is shown as written.
    assert_eq!(row("C_PAN_PRD_MC_CPP")[1], "coalition");
    assert!(!text.contains("PRI (column"), "{text}");

    let (code, v) = inspect_json(&path, &[]);
    assert_eq!(code, Some(0));
    let votes = v["elections"][0]["votes"].as_array().unwrap();
    let at = |position: u64| {
        votes
            .iter()
            .find(|c| c["position"] == position)
            .unwrap_or_else(|| panic!("no column {position} in {votes:#?}"))
    };
    for (position, column, total) in [
        (28, "C_PRD_MC_CPP", 13),
        (36, "C_PRD_MC_CPP", 2),
        (49, "C_PT_MORENA", 6),
        (55, "C_PT_MORENA", 18),
    ] {
        let c = at(position);
        assert_eq!(
            (&c["column"], &c["votes"]),
            (&column.into(), &total.into()),
            "{c:#}"
        );
    }
    assert_eq!(at(17)["column"], "PAN");
}

#[test]
fn queretaro_2018_sin_acta_rows_are_captured_and_inconsistent() {
    let e = derived_election("ieeq2018_sin_acta_empty_contabilizada.csv", "ieeq-2018");
    assert_eq!(
        field(&e, "ACTAS_CAPTURADAS")["variant"],
        "empty-observed-captured"
    );
    assert_eq!(
        field(&e, "PORCENTAJE_ACTAS_INCONSISTENCIAS")["variant"],
        "inconsistency-any-observation + empty-observed-captured"
    );
    // MORENA is written `M`: its coalitions are coalitions.
    let votes = e["votes"].as_array().unwrap();
    let coalition = votes.iter().find(|v| v["column"] == "MORENA_PT").unwrap();
    assert_eq!(coalition["kind"], "coalition");
    let path = derived_fixture("ieeq2018_sin_acta_empty_contabilizada.csv");
    inconsistent_under(&path, "ieec-2021");
}

#[test]
fn campeche_2021_leaves_special_casillas_out_of_participation_during_the_night() {
    let name = "ieec2021_participation_without_specials_during_operation.csv";
    let e = derived_election(name, "ieec-2021");
    let participation = field(&e, "PORCENTAJE_PARTICIPACION_CIUDADANA");
    assert_eq!(participation["variant"], "participation-without-specials");
    assert_eq!(participation["recomputed"], "50.0691");
    // Sonora's definitions take the votes of special casillas: the text report marks the
    // field DIFFERENT and shows every definition's value.
    let text = inconsistent_under(&derived_fixture(name), "iee-sonora-2021");
    let line = text
        .lines()
        .find(|l| l.contains("PORCENTAJE_PARTICIPACION_CIUDADANA") && l.contains("DIFFERENT"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("112.8630 (participation-with-specials)"),
        "{line}"
    );
    assert!(text.contains("INCONSISTENT"), "{text}");
}

#[test]
fn the_real_sonora_summary_with_thousands_and_percent_signs_is_read() {
    let real = std::fs::read_to_string(real_fixture(SONORA)).unwrap();
    let line = "3748,3772,24,3748,100.0000,3164,84.4183,16.0885,584,1847519,814690,808474,44.0964";
    assert_eq!(real.matches(line).count(), 1);
    let written = "\"3,748\",\"3,772\",24,\"3,748\",'100.0000%,\"3,164\",'84.4183%,'16.0885%,584,\
                   \"1,847,519\",\"814,690\",\"808,474\",'44.0964%";
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        SONORA,
        real.replacen(line, written, 1).as_bytes(),
    );
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(
        field(&v["elections"][0], "TOTAL_VOTOS_C_CS")["declared"],
        "814,690"
    );
}

#[test]
fn a_computos_file_is_refused_by_name_with_exit_status_2() {
    let computos = "CÓMPUTOS DISTRITALES\n\
        10/06/2018 12:00 (UTC-5)\n\
        ACTAS_ESPERADAS,ACTAS_COMPUTADAS,PORCENTAJE_ACTAS_COMPUTADAS\n\
        1,1,100.0000\n\n\
        CLAVE_CASILLA,CLAVE_ACTA,TIPO_CASILLA,PAN,NO_REGISTRADOS,NULOS,LISTA_NOMINAL\n\
        '210001B0100,'210001B010005,B,1,0,0,500\n";
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "PUE_GOB_2018.csv", computos.as_bytes());
    let package = write(
        dir.path(),
        "20180710_1200_PREP_PUE.zip",
        &zip_bytes(&[("PUE_GOB_2018.csv", computos.as_bytes())]),
    );
    for path in [csv, package] {
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "PUE_GOB_2018.csv, line 3, column ACTAS_COMPUTADAS: a cómputos file, not PREP results"
            ),
            "{err}"
        );
    }
    // Cómputos by casilla, as IEQROO writes them (2024: `TOTAL`; 2021: no CLAVE_CASILLA at
    // all): no summary, and no CONTABILIZADA on the casillas' rows.
    for (name, header, row) in [
        (
            "QROO_AYUN_2024.csv",
            "CLAVE_CASILLA|CLAVE_ACTA|SECCION|TIPO_CASILLA|PAN|NO_REGISTRADAS|NULOS|TOTAL|\
             LISTA_NOMINAL|OBSERVACIONES",
            "=\"230004B0100\"|230004B010002|=\"0004\"|B|28|0|8|36|716|COTEJADO EN PLENO",
        ),
        (
            "QROO_AYUN_2021.csv",
            "ID_ESTADO|SECCION|TIPO_CASILLA|PAN|NO_REGISTRADOS|NULOS|TOTAL_VOTOS_CALCULADO|\
             LISTA_NOMINAL|OBSERVACIONES",
            "23|1|BASICA 1|17|0|2|19|704|RECONTADO EN GRUPO DE TRABAJO",
        ),
    ] {
        let text = format!("sep=|\nAYUNTAMIENTOS\n10/06/2024 14:45 (UTC-5)\n \n{header}\n{row}\n");
        let path = write(dir.path(), name, text.as_bytes());
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{name}, line 5, column CONTABILIZADA: a cómputos file, not PREP results"
            )),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_reglas_exits_2_naming_the_known_ones() {
    let out = inspect(&[real_fixture(SONORA).to_str().unwrap(), "--reglas", "nadie"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"nadie\"") && err.contains("ieec-2021") && err.contains("ieeq-2018"),
        "{err}"
    );
}

/// A derived file without its title line: its election comes from its name.
fn untitled(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(derived_fixture(name)).unwrap();
    let end = bytes
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap();
    bytes[end + 1..].to_vec()
}

#[test]
fn every_package_shape_is_inspected() {
    let leeme = b"Descripcion de los campos\r\n".as_slice();
    let ine2019 = std::fs::read(derived_fixture("ine2019_pue_TOTAL_VOTOS_column.csv")).unwrap();
    let ieeq = std::fs::read(derived_fixture("ieeq2018_sin_acta_empty_contabilizada.csv")).unwrap();
    let alcaldias = untitled("camp_fuera_catalogo_contabilizada0.csv");
    let senado = untitled("ine2023_todos_los_campos_vacios.csv");
    // An inner zip whose CSV sits in a folder, with a folder entry.
    let inner = zip_bytes(&[
        ("DIP LOC/", b""),
        ("DIP LOC/QRO_DIP_LOC_2018.csv", &ieeq),
        ("leeme.txt", leeme),
    ]);
    // CSVs directly in the package, one with `_ext`, names with spaces, election codes.
    let package = zip_bytes(&[
        ("PUE_GOB_ext_2019.csv", &ine2019),
        ("CDMX_ALC_2024.csv", &alcaldias),
        ("Senado extraordinario/TAMPS_SEN_FED_2023.csv", &senado),
        ("20180702_1145_PREP_DIP_LOC_QRO.zip", &inner),
        ("leeme.txt", leeme),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "20240602_2300_PREP.zip", &package);
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let elections: Vec<(&str, &str)> = v["elections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["file"].as_str().unwrap(), e["election"].as_str().unwrap()))
        .collect();
    assert_eq!(
        elections,
        [
            ("PUE_GOB_ext_2019.csv", "gubernatura"),
            ("CDMX_ALC_2024.csv", "ayuntamientos"),
            ("Senado extraordinario/TAMPS_SEN_FED_2023.csv", "senaduria"),
            (
                "20180702_1145_PREP_DIP_LOC_QRO/DIP LOC/QRO_DIP_LOC_2018.csv",
                "diputaciones"
            ),
        ]
    );
    let others = v["other_files"].as_array().unwrap();
    assert!(others.contains(&"leeme.txt".into()), "{others:?}");
    assert!(others.contains(&"20180702_1145_PREP_DIP_LOC_QRO/leeme.txt".into()));
}

/// A data package holding `csv` as `name`, directly.
fn csv_package(name: &str, csv: &[u8]) -> Vec<u8> {
    zip_bytes(&[(name, csv), ("LEEME.txt", b"campos\r\n")])
}

#[test]
fn the_server_refuses_only_what_no_known_definition_explains() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    // True to its rows only under Querétaro's definitions: published, no warning.
    let ieeq = std::fs::read(derived_fixture("ieeq2018_sin_acta_empty_contabilizada.csv")).unwrap();
    let package = csv_package("QRO_DIP_LOC_2018.csv", &ieeq);
    drop_file(&server.entrada(), "20180702_1145_PREP_QRO.zip", &package);
    server.wait_corte("20180702_1145");
    assert_eq!(server.status()["counts"]["inconsistent"], 0);
    assert!(
        events(&server, "warning")
            .iter()
            .all(|w| w["detail"]["check"] != "summary")
    );
    // The same rows with one more acta captured than they show: refused.
    let off =
        String::from_utf8(ieeq)
            .unwrap()
            .replacen("\n2,2,0,2,100.0000,", "\n2,2,0,3,100.0000,", 1);
    drop_file(
        &server.entrada(),
        "20180702_1200_PREP_QRO.zip",
        &csv_package("QRO_DIP_LOC_2018.csv", off.as_bytes()),
    );
    server.wait_status("the rejection", |s| s["counts"]["rejected"] == 1);
    assert_eq!(server.live_corte().as_deref(), Some("20180702_1145"));
    let rejected = events(&server, "rejected");
    let reason = rejected[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("ACTAS_CAPTURADAS declared \"3\", recomputed"),
        "{reason}"
    );
    let warning = events(&server, "warning")
        .into_iter()
        .find(|w| w["detail"]["check"] == "summary")
        .unwrap();
    let fields = warning["detail"]["fields"].as_array().unwrap();
    assert_eq!(fields[0]["field"], "ACTAS_CAPTURADAS");
    assert!(
        fields[0]["variants"].as_array().unwrap().len() >= 2,
        "{fields:?}"
    );
}

#[test]
fn the_reglas_setting_pins_the_servers_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("d"),
        &["--reject-inconsistent", "--reglas", "iee-sonora-2021"],
    );
    let name = "ieec2021_participation_without_specials_during_operation.csv";
    let ieec = std::fs::read(derived_fixture(name)).unwrap();
    drop_file(
        &server.entrada(),
        "20210607_1320_PREP_CAMP.zip",
        &csv_package("CAMP_GOB_2021.csv", &ieec),
    );
    server.wait_status("the rejection", |s| s["counts"]["rejected"] == 1);
    let rejected = events(&server, "rejected");
    let reason = rejected[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("PORCENTAJE_PARTICIPACION_CIUDADANA"),
        "{reason}"
    );

    // An unknown name stops the command at once, naming the setting and the known ones.
    let file = write(
        dir.path(),
        "20210607_1320_PREP_CAMP.zip",
        &csv_package("CAMP_GOB_2021.csv", &ieec),
    );
    let out = difusor()
        .args(["ingest", &file, "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--reglas", "campeche"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("setting `reglas`") && err.contains("ieec-2021"),
        "{err}"
    );
}

/// The Campeche cut of one counted and one out-of-catalogue acta: no quoted cells, so every
/// comma is a separator.
fn campeche_cut() -> String {
    std::fs::read_to_string(derived_fixture("camp_fuera_catalogo_contabilizada0.csv")).unwrap()
}

/// [`campeche_cut`] with `from` replaced by `to`, once.
fn campeche_cut_with(from: &str, to: &str) -> String {
    let cut = campeche_cut();
    assert_eq!(cut.matches(from).count(), 1, "{from}");
    cut.replacen(from, to, 1)
}

/// `csv` written into `dir` as `name`, and the one election of its report, after checking
/// that it is read true to its summary (exit status 0).
fn cut_election(dir: &std::path::Path, name: &str, csv: &str) -> (String, serde_json::Value) {
    let path = write(dir, name, csv.as_bytes());
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    (path, v["elections"][0].clone())
}

/// The names of an election's vote columns, in the report's order.
fn vote_columns(e: &serde_json::Value) -> Vec<&str> {
    e["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect()
}

/// The entry of `column` among an election's votes.
fn vote_column<'e>(e: &'e serde_json::Value, column: &str) -> &'e serde_json::Value {
    e["votes"]
        .as_array()
        .and_then(|votes| votes.iter().find(|c| c["column"] == column))
        .unwrap_or_else(|| panic!("no {column} in {:#}", e["votes"]))
}

#[test]
fn oaxaca_2022_a_percentage_one_ten_thousandth_low_is_its_arithmetic_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    // 362 votes over a lista nominal of 723: 50.06915…, truncated 50.0691.
    for (written, admitted) in [
        ("50.0691", true),
        ("50.0690", true),
        ("50.0689", false),
        ("50.0692", false),
    ] {
        let csv = campeche_cut_with(",723,362,362,50.0691", &format!(",723,362,362,{written}"));
        let path = dir.path().join(format!("CAMP_GOB_2021_{written}.csv"));
        std::fs::write(&path, csv).unwrap();
        let (code, v) = inspect_json(&path, &[]);
        let e = &v["elections"][0];
        let participation = field(e, "PORCENTAJE_PARTICIPACION_CIUDADANA");
        assert_eq!(code, Some(if admitted { 0 } else { 1 }), "{written}: {e:#}");
        assert_eq!(
            participation["equal"], admitted,
            "{written}: {participation:#}"
        );
        let (code, pinned) = inspect_json(&path, &["--reglas", "ieepco-2022"]);
        assert_eq!(
            code,
            Some(if admitted { 0 } else { 1 }),
            "{written}: {pinned:#}"
        );
        if written == "50.0690" {
            assert!(
                participation["variant"]
                    .as_str()
                    .unwrap()
                    .contains("percent-one-below"),
                "{participation:#}"
            );
            assert_eq!(participation["recomputed"], "50.0690–50.0691");
            // The rule is named only where it was needed: the other percentages are exact.
            let captured = field(e, "PORCENTAJE_ACTAS_CAPTURADAS");
            assert_eq!(
                (&captured["variant"], &captured["recomputed"]),
                (&"standard".into(), &"100.0000".into()),
                "{captured:#}"
            );
            assert_eq!(
                e["definitions"]["explained_by"],
                serde_json::json!(["ieepco-2022"])
            );
            // Every other institute's own definitions find it different.
            let report = inconsistent_under(&path, "ieec-2021");
            assert!(
                report.contains("PORCENTAJE_PARTICIPACION_CIUDADANA declared \"50.0690\""),
                "{report}"
            );
        }
    }
}

#[test]
fn independent_candidates_are_told_from_coalitions_however_written() {
    // IEEM 2024 writes `C_I_LFAF`, IEEPCO 2022 `CI1`, beside coalitions written `C_…`.
    let csv = campeche_cut_with(",PES,RSP,FM,", ",PES,CI1,C_I_LFAF,");
    let dir = tempfile::tempdir().unwrap();
    let (_, e) = cut_election(dir.path(), "CAMP_GOB_2021.csv", &csv);
    let kind = |name: &str| vote_column(&e, name)["kind"].clone();
    assert_eq!(kind("CI1"), "independent");
    assert_eq!(kind("C_I_LFAF"), "independent");
    assert_eq!(kind("PES"), "party");
    assert_eq!(kind("C_PAN_PRI_PRD"), "coalition");
    assert_eq!(kind("C_PT_MOR"), "coalition");
}

#[test]
fn coalitions_written_co_are_coalitions() {
    // IEE Aguascalientes 2022 and IEEH Hidalgo 2022 write their coalitions `CO_PAN_PRI_PRD`,
    // `CO_PVEM_PT`, beside common candidacies `CC_…` (Hidalgo).
    let csv = campeche_cut_with(",C_PAN_PRI_PRD,", ",CO_PAN_PRI_PRD,")
        .replacen(",C_PT_MOR,", ",CO_PVEM_PT,", 1)
        .replacen(",C_PRI_PRD,", ",CC_PRI_PRD,", 1);
    let dir = tempfile::tempdir().unwrap();
    let (_, e) = cut_election(dir.path(), "AGS_GUB_2022.csv", &csv);
    let kind = |name: &str| vote_column(&e, name)["kind"].clone();
    assert_eq!(kind("CO_PAN_PRI_PRD"), "coalition");
    assert_eq!(kind("CO_PVEM_PT"), "coalition");
    assert_eq!(kind("CC_PRI_PRD"), "coalition");
    assert_eq!(kind("PVEM"), "party");
}

/// IETAM Tamaulipas writes a coalition's column under the coalition's own name, in words:
/// its PREP of 2022 (governorship, `TAMPS_GUB_2022.csv`, corte 06/06/2022 08:00) lists
/// `PAN`, `PRI`, `C_PAN_PRI_PRD`, …, `MC` and `Juntos Hacemos Historia en Tamaulipas`, the
/// alliance of MORENA, PT and PVEM (the header as read by the public analysis in GitHub
/// `JuveCampos/ArticulosAtiempoTV`, `2022-06-14 Resultados 2022/02_Scripts/mapa_estados.R`).
/// INE writes some parties out in words instead (its cómputos of 2018: `MOVIMIENTO
/// CIUDADANO`, `NUEVA ALIANZA`), and a national party may be (`Fuerza por México`): those stay
/// parties. The rows are the real Campeche cut's, with those headers in place of its own.
#[test]
fn tamaulipas_2022_a_coalition_named_in_words_is_a_coalition() {
    let csv = campeche_cut_with(",C_PT_MOR,", ",Juntos Hacemos Historia en Tamaulipas,")
        .replacen(",MC,", ",MOVIMIENTO CIUDADANO,", 1)
        .replacen(",RSP,", ",CANDIDATURA INDEPENDIENTE,", 1)
        .replacen(",FM,", ",Fuerza por México,", 1);
    let dir = tempfile::tempdir().unwrap();
    let (path, e) = cut_election(dir.path(), "TAMPS_GUB_2022.csv", &csv);
    let column = |name: &str| vote_column(&e, name);
    let juntos = column("JUNTOS HACEMOS HISTORIA EN TAMAULIPAS");
    assert_eq!(juntos["kind"], "coalition", "{juntos:#}");
    // The Campeche acta's 2 votes for C_PT_MOR, now under the Tamaulipas name.
    assert_eq!(juntos["votes"], 2, "{juntos:#}");
    assert_eq!(column("MOVIMIENTO CIUDADANO")["kind"], "party");
    assert_eq!(column("FUERZA POR MEXICO")["kind"], "party");
    assert_eq!(column("CANDIDATURA INDEPENDIENTE")["kind"], "independent");
    assert_eq!(column("MOR")["kind"], "party");
    assert_eq!(column("C_PAN_PRI_PRD")["kind"], "coalition");
    // The text report says so too.
    let out = inspect(&[&path]);
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("JUNTOS HACEMOS HISTORIA EN TAMAULIPAS"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("coalition"), "{line}");
}

/// INE named the ballots taken out of the box `NUM_BOLETAS_EXTRAIDAS` before it named them
/// `TOTAL_VOTOS_SACADOS`: its LEEME of 2015 lists `…|NUM_BOLETAS_SOBRANTES|
/// TOTAL_CIUDADANOS_VOTARON|NUM_BOLETAS_EXTRAIDAS|PAN|PRI|…` and says "NUM_BOLETAS_EXTRAIDAS -
/// Total de boletas sacadas de la urna" (GitHub `diegovalle/elections2015`, `data/LEEME.txt`),
/// and public analyses of IEC Coahuila's and OPLE Veracruz's PREP files of 2017 read the same
/// column before the parties. It is the acta's own figure, no party. The rows are the real
/// Campeche cut's, its `TOTAL_VOTOS_SACADOS` under the older name.
#[test]
fn the_ballots_taken_out_written_num_boletas_extraidas_are_no_party() {
    let csv = campeche_cut_with(",TOTAL_VOTOS_SACADOS,", ",NUM_BOLETAS_EXTRAIDAS,");
    let dir = tempfile::tempdir().unwrap();
    let (_, e) = cut_election(dir.path(), "CAMP_GOB_2021.csv", &csv);
    let columns = vote_columns(&e);
    assert_eq!(columns.first(), Some(&"PAN"), "{columns:?}");
    assert!(!columns.contains(&"NUM_BOLETAS_EXTRAIDAS"), "{columns:?}");
    // The counted acta's total is the sum of its votes, as it was under the newer name.
    assert_eq!(e["anomaly_count"], 0, "{:#}", e["anomalies"]);
}

/// [`campeche_cut`] with its summary lines (header and values) separated by `|`, as INE 2021
/// writes them before rows separated by `,`.
fn campeche_cut_with_a_pipe_summary(cut: &str) -> String {
    let mut lines: Vec<String> = cut.split('\n').map(str::to_owned).collect();
    assert!(lines[2].starts_with("ACTAS_ESPERADAS,"), "{}", lines[2]);
    for line in &mut lines[2..4] {
        *line = line.replace(',', "|");
    }
    lines.join("\n")
}

#[test]
fn ine_2021_a_summary_separated_by_pipes_before_rows_separated_by_commas_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("DIP_FED_2021.csv");
    std::fs::write(&path, campeche_cut_with_a_pipe_summary(&campeche_cut())).unwrap();
    let (code, v) = inspect_json(&path, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(
        (&e["separator"], &e["summary_separator"]),
        (&",".into(), &"|".into())
    );
    assert_eq!(e["rows"], 2);
    assert_eq!(e["summary"].as_array().unwrap().len(), 13, "{e:#}");
    let total = field(e, "TOTAL_VOTOS_C_CS");
    assert_eq!(
        (&total["declared"], &total["equal"]),
        (&"362".into(), &true.into())
    );
    let text = stdout(&inspect(&[path.to_str().unwrap()]));
    assert!(text.contains("separator ',' (summary '|')"), "{text}");

    // The summary so read is checked: one vote more is found.
    let changed = campeche_cut_with(",723,362,362,", ",723,363,362,");
    std::fs::write(&path, campeche_cut_with_a_pipe_summary(&changed)).unwrap();
    let (code, v) = inspect_json(&path, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    let total = field(&v["elections"][0], "TOTAL_VOTOS_C_CS");
    assert_eq!(
        (&total["declared"], &total["equal"]),
        (&"363".into(), &false.into())
    );
}

#[test]
fn a_file_re_saved_with_semicolons_is_read() {
    let csv = campeche_cut().replace(',', ";");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "CAMP_GOB_2021.csv", csv.as_bytes());
    let out = inspect(&[&path, "--reglas", "ieec-2021"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("separator ';'"), "{}", stdout(&out));
}

#[test]
fn line_numbers_are_right_whatever_ends_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    // Title, corte, a blank line, then a column header without NO_REGISTRADOS on line 4.
    let lines = [
        "GUBERNATURA",
        "01/06/2021 18:52 (UTC-5)",
        "",
        "CLAVE_CASILLA,PAN",
    ];
    for (name, end, last) in [
        ("lf", "\n", "\n"),
        ("crlf", "\r\n", "\r\n"),
        ("cr", "\r", "\r"),
        ("crlf-unended", "\r\n", ""),
        ("lf-unended", "\n", ""),
    ] {
        let text = lines.join(end) + last;
        let path = write(dir.path(), &format!("{name}.csv"), text.as_bytes());
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{name}.csv, line 4, column NO_REGISTRADOS")),
            "{name}: {err}"
        );
    }
    // A file that ends before any column header is reported at its last line with text.
    let path = write(
        dir.path(),
        "cut.csv",
        b"GUBERNATURA\r\n01/06/2021 18:52 (UTC-5)\r\n\r\n",
    );
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.csv, line 2: the file ends without a column header"),
        "{err}"
    );
}

/// The Campeche cut with three cells inserted after `TOTAL_VOTOS_SACADOS` on the header and
/// every row, as INE 2021 lays out the codes of the electronic ballot box's acta.
fn campeche_cut_with_code_columns() -> String {
    let cut = campeche_cut();
    let mut after_header = false;
    let mut out = String::new();
    for line in cut.lines() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if line.starts_with("CLAVE_CASILLA,") {
            assert_eq!(cells[15], "TOTAL_VOTOS_SACADOS");
            cells.splice(
                16..16,
                [
                    "CODIGOS_ENTREGADOS_PMDC",
                    "CODIGOS_SOBRANTES",
                    "CODIGOS_UTILIZADOS",
                ],
            );
            after_header = true;
        } else if after_header && cells.len() > 16 {
            cells.splice(16..16, ["750", "388", "362"]);
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[test]
fn ine_2021_the_ballot_box_codes_are_no_votes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Diputaciones.csv");
    std::fs::write(&path, campeche_cut_with_code_columns()).unwrap();
    let (code, v) = inspect_json(&path, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    let columns = vote_columns(e);
    assert_eq!(columns.first(), Some(&"PAN"), "{columns:?}");
    assert!(
        !columns.iter().any(|c| c.starts_with("CODIGOS")),
        "{columns:?}"
    );
    assert_eq!(e["anomaly_count"], 0, "{e:#}");
}

#[test]
fn the_vote_from_abroad_is_no_casilla_over_its_lista_nominal() {
    let dir = tempfile::tempdir().unwrap();
    // The counted acta, 362 votes, its lista nominal written 0 (as IEEM 2024 writes it on the
    // acta of the votes from abroad), as a basic casilla, as the acta from abroad, and with
    // its representatives not stated.
    let row = ",B,00,1,5,381,356,6,362,12,78,1,3,4,180,69,2,1,1,5,1,0,0,2,0,3,362,362,723,6,";
    let cases = [
        (
            "B",
            "0,6",
            Some("362 votes in a casilla with lista nominal 0 and 6 representatives"),
        ),
        ("M", "0,6", None),
        (
            "B",
            "0,N/A",
            Some("362 votes in a casilla with lista nominal 0 (representatives not stated)"),
        ),
    ];
    for (tipo, lista_reps, anomaly) in cases {
        let changed = row.replacen(",B,", &format!(",{tipo},"), 1).replacen(
            ",723,6,",
            &format!(",{lista_reps},"),
            1,
        );
        let path = dir
            .path()
            .join(format!("CAMP_GOB_2021_{tipo}_{}.csv", unique()));
        std::fs::write(&path, campeche_cut_with(row, &changed)).unwrap();
        let (_, v) = inspect_json(&path, &[]);
        let anomalies: Vec<&str> = v["elections"][0]["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["what"].as_str().unwrap())
            .collect();
        match anomaly {
            Some(what) => assert_eq!(anomalies, [what], "{tipo} {lista_reps}"),
            None => assert!(anomalies.is_empty(), "{tipo}: {anomalies:?}"),
        }
    }
}

/// The Campeche cut with `rows` after its two rows.
fn campeche_cut_and(rows: &[u8]) -> Vec<u8> {
    let mut csv = campeche_cut().into_bytes();
    csv.extend_from_slice(rows);
    csv
}

/// A file whose one line (or quoted cell) has no end is refused once past 1 MiB, naming the
/// line where it begins, instead of being held whole; so is a column header of more columns
/// than any real file has, at once instead of after comparing every column with every other.
#[test]
fn a_line_without_an_end_and_a_header_of_thousands_of_columns_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = campeche_cut_and(&vec![b'7'; 3 << 20]);
    let mut unclosed = campeche_cut_and(b"\"");
    for _ in 0..40_000 {
        unclosed.extend_from_slice(&[b'x'; 99]);
        unclosed.push(b'\n');
    }
    for (name, csv) in [
        ("LONG_GOB_2021.csv", long),
        ("QUOTE_GOB_2021.csv", unclosed),
    ] {
        let path = write(dir.path(), name, &csv);
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{name}, line 9: a line (or a quoted cell across lines) goes on past 1048576 bytes"
            )),
            "{err}"
        );
    }

    let cut = campeche_cut();
    let header = cut.lines().nth(5).unwrap();
    assert!(header.starts_with("CLAVE_CASILLA,"), "{header}");
    let parties: Vec<String> = (0..5_000).map(|i| format!("P{i}_Q")).collect();
    let wide_header = header.replacen("PAN,PRI,", &format!("{},PAN,PRI,", parties.join(",")), 1);
    let wide = cut.lines().take(5).collect::<Vec<_>>().join("\n") + "\n" + &wide_header + "\n";
    let path = write(dir.path(), "WIDE_GOB_2021.csv", wide.as_bytes());
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WIDE_GOB_2021.csv, line 6: a column header of 5047 columns, over the 1000"),
        "{err}"
    );
}

/// A file of actas each with an observation of its own is reported with the first 1,000
/// observations and the rest counted together as `(other)`, still in the summary's counts.
#[test]
fn observations_past_a_thousand_distinct_ones_are_counted_together() {
    let dir = tempfile::tempdir().unwrap();
    let cut = campeche_cut();
    let row = cut.lines().nth(6).unwrap();
    assert!(row.contains(",6,,1,F,"), "{row}");
    let mut rows = String::new();
    for i in 0..1_500 {
        let acta = row.replacen("040004B010005", &format!("X{i}"), 1).replacen(
            ",6,,1,F,",
            &format!(",6,SIN ACTA {i},0,F,"),
            1,
        );
        rows.push_str(&acta);
        rows.push('\n');
    }
    let path = dir.path().join("OBS_GOB_2021.csv");
    std::fs::write(&path, campeche_cut_and(rows.as_bytes())).unwrap();
    let (code, v) = inspect_json(&path, &[]);
    assert_eq!(code, Some(1), "the summary counts two actas");
    let e = &v["elections"][0];
    assert_eq!(e["rows"], 1_502);
    let by_observation = e["by_observation"].as_array().unwrap();
    assert_eq!(
        by_observation.len(),
        1_001,
        "distinct observations kept, and (other)"
    );
    let other = &by_observation[0];
    assert_eq!(other["observation"], "(other)", "{by_observation:?}");
    assert_eq!(other["actas"], 502, "{by_observation:?}");
    let seen: u64 = by_observation
        .iter()
        .map(|o| o["actas"].as_u64().unwrap())
        .sum();
    assert_eq!(seen, 1_502);
}

/// On arrival, a results CSV with a line that has no end is a plain journal warning, and
/// the package is published all the same.
#[test]
fn a_data_package_with_a_line_without_an_end_is_published_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &[]);
    let csv = campeche_cut_and(&vec![b'7'; 3 << 20]);
    // Stored, not deflated: a line of one digit repeated would pass the compression ratio limit.
    let package = zip_repeated(
        1,
        |_| "CAMP_GOB_2021.csv".to_owned(),
        &csv,
        zip::CompressionMethod::Stored,
    );
    drop_file(&server.entrada(), "20210607_2000_PREP_CAMP.zip", &package);
    server.wait_corte("20210607_2000");
    let warnings: Vec<String> = events(&server, "warning")
        .iter()
        .filter(|w| w["detail"]["check"] == "summary")
        .map(|w| w["detail"]["warning"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "a results CSV cannot be read: CAMP_GOB_2021.csv, line 9: a line (or a quoted cell \
             across lines) goes on past 1048576 bytes"
        ),
        "{warnings:?}"
    );
}

/// A title and a summary value of hundreds of kilobytes are shown cut to 200 characters, in
/// the report and the journal alike, instead of whole, over and over.
#[test]
fn a_huge_title_and_summary_value_are_shown_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cut = campeche_cut();
    let huge_title = "T".repeat(500_000);
    let huge_value = "1".repeat(500_000);
    let csv = cut
        .replacen("GUBERNATURA\n", &format!("{huge_title}\n"), 1)
        .replacen(
            "\n1,2,1,1,100.0000,",
            &format!("\n{huge_value},2,1,1,100.0000,"),
            1,
        );
    let path = write(dir.path(), "CAMP_GOB_2021.csv", csv.as_bytes());
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.len() < 20_000, "{} bytes of report", text.len());
    let shown = format!("{}… (500000 bytes in all)", "1".repeat(200));
    assert!(
        text.contains(&format!("ACTAS_ESPERADAS declared \"{shown}\"")),
        "{text}"
    );
}

/// Sums of votes that pass 2^64 (two cells of 19 digits) stay at the largest number instead
/// of wrapping round to a small one that could look like a real total.
#[test]
fn vote_sums_past_the_largest_number_do_not_wrap() {
    let real = std::fs::read_to_string(real_fixture(SONORA)).unwrap();
    let huge = "9999999999999999999";
    let mut changed = real.clone();
    for (from, to) in [
        (",430,131,184,70,", ",430,{},184,70,"),
        (",417,120,188,74,", ",417,{},188,74,"),
    ] {
        assert_eq!(changed.matches(from).count(), 1, "{from}");
        changed = changed.replacen(from, &to.replace("{}", huge), 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SONORA, changed.as_bytes());
    let (code, report) = inspect_json(std::path::Path::new(&path), &[]);
    // The summary line holds no party's votes: only the two rows' totals are anomalies.
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["elections"][0]["anomaly_count"], 2, "{report:#}");
    let totals: Vec<u64> = report["elections"][0]["votes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["votes"].as_u64())
        .collect();
    assert!(totals.contains(&u64::MAX), "{totals:?}");
}

/// A results CSV in the layout of 2015–2017, which has no key column (`CLAVE_CASILLA`,
/// `CLAVE_ACTA`): a casilla is its `SECCION`, `TIPO_CASILLA`, `ID_CASILLA` and `EXT_CONTIGUA`.
/// The columns, in order, are IEC Coahuila 2017's (`COAH_AYUN_2017.csv` as a public analysis
/// of it reads it: five lines before the column header, `NA` for Nueva Alianza, `CRYT`,
/// `SHA`, `FECHA_HORA_REGISTRO`); INE's LEEME of 2015 lists the same acta figures
/// (`NUM_BOLETAS_SOBRANTES`, `TOTAL_CIUDADANOS_VOTARON`, `NUM_BOLETAS_EXTRAIDAS`) and
/// `TOTAL_VOTOS`. No institute's file of those years was found in public: the rows and the
/// summary are made up, the summary being what the rows give (participation without the
/// special casilla, as before the last corte).
const LAYOUT_2017_HEADER: &str = "ESTADO,ID_MUNICIPIO_LOCAL,MUNICIPIO_LOCAL,SECCION,ID_CASILLA,\
    TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,NUM_BOLETAS_SOBRANTES,\
    TOTAL_CIUDADANOS_VOTARON,NUM_BOLETAS_EXTRAIDAS,PAN,PRI,PRD,PT,PVEM,MC,NA,MORENA,ES,\
    C_PRI_PVEM,CAND_IND_1,NO_REGISTRADOS,NULOS,TOTAL_VOTOS,LISTA_NOMINAL,OBSERVACIONES,\
    CONTABILIZADA,CRYT,SHA,FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,FECHA_HORA_REGISTRO";
const LAYOUT_2017_ROWS: &str = "\
5,1,ABASOLO,1,1,B,0,2,2,200,300,300,50,120,5,3,2,1,4,30,2,10,-,0,8,235,520,,1,CATD,abc,05/06/2017 20:10,05/06/2017 20:20,05/06/2017 20:25
5,1,ABASOLO,1,1,C,1,2,2,210,290,290,60,100,5,3,2,1,4,40,2,5,-,0,9,231,519,,1,CATD,abd,05/06/2017 20:11,05/06/2017 20:21,05/06/2017 20:26
5,1,ABASOLO,2,1,S,0,2,3,500,400,400,100,150,10,5,5,5,5,60,5,20,-,1,10,376,0,,1,CATD,abe,05/06/2017 20:12,05/06/2017 20:22,05/06/2017 20:27
5,2,ACUNA,3,1,B,0,1,2,-,-,-,-,-,-,-,-,-,-,-,-,-,-,-,-,-,600,SIN ACTA,0,,,,,
";
const LAYOUT_2017_SUMMARY: &str = "ACTAS_ESPERADAS,ACTAS_REGISTRADAS,ACTAS_FUERA_CATALOGO,\
    ACTAS_CAPTURADAS,PORCENTAJE_ACTAS_CAPTURADAS,ACTAS_CONTABILIZADAS,\
    PORCENTAJE_ACTAS_CONTABILIZADAS,PORCENTAJE_ACTAS_INCONSISTENCIAS,ACTAS_NO_CONTABILIZADAS,\
    LISTA_NOMINAL_ACTAS_CONTABILIZADAS,TOTAL_VOTOS_C_CS,TOTAL_VOTOS_S_CS,\
    PORCENTAJE_PARTICIPACION_CIUDADANA\n4,4,0,4,100.0000,3,75.0000,0.0000,1,1039,842,466,44.8508";

#[test]
fn the_layouts_of_2015_to_2017_without_a_key_column_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // IEEM 2017 writes its column header in lower case, and its package is a zip.
    for (name, header) in [
        ("COAH_AYUN_2017.csv", LAYOUT_2017_HEADER.to_owned()),
        ("MEX_GOB_2017.csv", LAYOUT_2017_HEADER.to_lowercase()),
    ] {
        let csv = format!(
            "AYUNTAMIENTOS\n05/06/2017 20:30 (UTC-6)\n{LAYOUT_2017_SUMMARY}\n\n{header}\n\
             {LAYOUT_2017_ROWS}"
        );
        let (path, e) = cut_election(dir.path(), name, &csv);
        assert_eq!(e["rows"], 4, "{name}: {e:#}");
        assert_eq!(e["consistent"], true, "{name}: {e:#}");
        assert_eq!(field(&e, "TOTAL_VOTOS_C_CS")["recomputed"], "842", "{name}");
        assert_eq!(vote_column(&e, "NA")["kind"], "party", "{name}");
        assert_eq!(vote_column(&e, "NA")["votes"], 13, "{name}");
        assert_eq!(vote_column(&e, "C_PRI_PVEM")["kind"], "coalition", "{name}");
        assert_eq!(
            vote_column(&e, "CAND_IND_1")["kind"],
            "independent",
            "{name}"
        );
        assert_eq!(vote_column(&e, "CAND_IND_1")["missing"], 3, "{name}");
        let package = write(
            dir.path(),
            "20170605_2030_PREP.zip",
            &zip_bytes(&[(name, std::fs::read(&path).unwrap().as_slice())]),
        );
        let out = inspect(&[&package]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
        assert!(stdout(&out).contains("4 actas"), "{name}: {}", stdout(&out));
    }
}

#[test]
fn an_old_layout_without_a_summary_is_read_with_nothing_to_compare() {
    let dir = tempfile::tempdir().unwrap();
    // Its first row written twice: the acta is named by its parts, as there is no key.
    let first = LAYOUT_2017_ROWS.lines().next().unwrap();
    let csv = format!(
        "AYUNTAMIENTOS\n05/06/2017 20:30 (UTC-6)\n\n{LAYOUT_2017_HEADER}\n{LAYOUT_2017_ROWS}\
         {first}\n"
    );
    let (path, e) = cut_election(dir.path(), "COAH_AYUN_2017.csv", &csv);
    assert_eq!(e["summary_present"], false, "{e:#}");
    assert_eq!(e["rows"], 5, "{e:#}");
    assert_eq!(e["anomaly_count"], 1, "{e:#}");
    assert_eq!(e["anomalies"][0]["line"], 9, "{e:#}");
    assert_eq!(
        e["anomalies"][0]["what"], "the same acta is already on line 5",
        "{e:#}"
    );
    assert_eq!(vote_column(&e, "MORENA")["votes"], 160, "{e:#}");
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("no summary line: nothing to compare")
            && text.contains("NOTHING TO COMPARE: no summary line in the results read")
            && !text.contains("CONSISTENT"),
        "{text}"
    );
}

/// INE's cómputos of 2015 (its LEEME, "Cómputos Distritales 2015"): the time and the day as
/// two lines, a summary `CASILLAS_APROBADAS|…|COMPUTADAS`, and casilla rows that do have
/// `CONTABILIZADA`, in pipes and Latin-1. The row is made up.
#[test]
fn ine_2015_computos_with_contabilizada_are_refused_by_name() {
    let text = "20:00 horas (UTC-5)\nDomingo 7 de junio de 2015\n\
        CASILLAS_APROBADAS|CASILLAS_INSTALADAS|CASILLAS_NO_INSTALADAS|CON_PAQUETE_RECIBIDO|\
        SIN_PAQUETE_RECIBIDO|COMPUTADAS\n1|1|0|1|0|1\n\n\
        ESTADO|DISTRITO|SECCION|ID_CASILLA|TIPO_CASILLA|EXT_CONTIGUA|UBICACION_CASILLA|\
        TIPO_ACTA|NUM_BOLETAS_SOBRANTES|TOTAL_CIUDADANOS_VOTARON|NUM_BOLETAS_EXTRAIDAS|PAN|PRI|\
        NO_REGISTRADOS|NULOS|TOTAL_VOTOS|LISTA_NOMINAL|OBSERVACIONES|CONTABILIZADA\n\
        1|1|338|1|B|0|1|2|200|300|300|150|100|0|5|255|500|Sin dato|1\n";
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "diputados.csv", text.as_bytes());
    let package = write(
        dir.path(),
        "20150611_1043-listaActas.zip",
        &zip_bytes(&[("diputados.csv", text.as_bytes())]),
    );
    for path in [csv, package] {
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("diputados.csv, line 3, column COMPUTADAS: a cómputos file, not PREP"),
            "{err}"
        );
    }
}

/// A Latin-1 file (INE 2019 writes `ACTAS_FUERA_DE_CATÁLOGO` and `Móvil` in Latin-1) reads
/// its observations in Latin-1: `FUERA DE CATÁLOGO` puts its acta out of the catalogue as
/// it does in UTF-8.
#[test]
fn a_latin1_files_observations_are_read_in_latin1() {
    let cut = campeche_cut().replace("FUERA DE CATALOGO", "FUERA DE CATÁLOGO");
    assert!(cut.contains("FUERA DE CATÁLOGO"));
    let (latin1, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&cut);
    assert!(!unmappable);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "CAMP_GOB_2021.csv", &latin1);
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["encoding"], "Latin-1");
    assert_eq!(field(e, "ACTAS_FUERA_CATALOGO")["recomputed"], "1", "{e:#}");
}

#[test]
fn a_utf16_file_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bom, le) in [
        ("le.csv", [0xFF, 0xFE], true),
        ("be.csv", [0xFE, 0xFF], false),
    ] {
        let mut bytes = bom.to_vec();
        for unit in campeche_cut().encode_utf16() {
            bytes.extend(if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        let path = write(dir.path(), name, &bytes);
        let out = inspect(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let mark = format!("{:02X} {:02X}", bom[0], bom[1]);
        assert!(
            err.contains(&format!("{name}, line 1: UTF-16 text"))
                && err.contains(&format!("byte-order mark {mark}")),
            "{err}"
        );
    }
}

/// The real Sonora file's lines, each without its line end.
fn sonora_lines() -> Vec<String> {
    let real = std::fs::read_to_string(real_fixture(SONORA)).unwrap();
    real.lines().map(str::to_owned).collect()
}

/// `lines` joined by LF, with a last one.
fn joined(lines: &[String]) -> Vec<u8> {
    (lines.join("\n") + "\n").into_bytes()
}

/// Sonora's cell `index` of the row on line `line` (1-based) set to `value`; no quoted cell
/// of the file holds a comma, so every comma is a separator.
fn set_cell(lines: &mut [String], line: usize, index: usize, value: &str) {
    let row = &mut lines[line - 1];
    let mut cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells.len(), 38, "line {line}: {row}");
    cells[index] = value;
    *row = cells.join(",");
}

/// The candidacies a state's package carries beside its results: a CSV of other content.
const CANDIDACIES: &[u8] = b"ID_ESTADO,ESTADO,PARTIDO_CI,CANDIDATURA\n26,SONORA,PAN,X\n";

/// A Sonora package whose results CSV holds `results`, beside its candidacies.
fn sonora_package(results: &[u8]) -> Vec<u8> {
    zip_bytes(&[
        ("SON_GOB_2021.csv", results),
        ("SON_GOB_CANDIDATURAS_2021.csv", CANDIDACIES),
    ])
}

/// Whether a text report calls the input consistent.
fn says_consistent(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("CONSISTENT"))
}

/// A package's results CSV that is no text (empty, UTF-16, NUL bytes) is reported as a
/// results CSV that cannot be read, with what it is, never taken for another file: the
/// package is not called consistent, and the exit status is 2. A package in which no results
/// CSV is read at all is not called consistent either.
#[test]
fn a_package_whose_results_csv_is_not_text_is_not_read_and_not_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(real_fixture(SONORA)).unwrap();
    let text = String::from_utf8(real[3..].to_vec()).unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    let mut utf16_unmarked = Vec::new();
    for unit in text.encode_utf16() {
        utf16.extend(unit.to_le_bytes());
        utf16_unmarked.extend(unit.to_le_bytes());
    }
    for (case, bytes, what) in [
        ("empty", Vec::new(), "the file is empty"),
        ("nul", vec![0u8; real.len()], "NUL bytes"),
        ("utf16", utf16, "UTF-16 text"),
        ("utf16-unmarked", utf16_unmarked, "NUL bytes"),
    ] {
        let path = write(
            dir.path(),
            &format!("20210607_1319_PREP_GOB_SON_{case}.zip"),
            &sonora_package(&bytes),
        );
        let out = inspect(&[&path]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{case}: {text}");
        assert!(!says_consistent(&text), "{case}: {text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("difusor: SON_GOB_2021.csv, line 1: ") && err.contains(what),
            "{case}: {err}"
        );
        let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
        assert_eq!(code, Some(2), "{case}: {v:#}");
        assert_eq!(
            v["unreadable"][0]["file"], "SON_GOB_2021.csv",
            "{case}: {v:#}"
        );
        assert_eq!(
            v["other_files"],
            serde_json::json!(["SON_GOB_CANDIDATURAS_2021.csv"]),
            "{case}: {v:#}"
        );
    }

    // Cut after its corte: read, and not readable as results; nothing else is called consistent.
    let path = write(
        dir.path(),
        "20210607_1319_PREP_GOB_SON_cut.zip",
        &sonora_package(&real[..60]),
    );
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(!says_consistent(&stdout(&out)), "{}", stdout(&out));

    // No results CSV at all: nothing was checked, which is no success.
    let path = write(
        dir.path(),
        "20210607_1319_PREP_GOB_SON_none.zip",
        &zip_bytes(&[("SON_GOB_CANDIDATURAS_2021.csv", CANDIDACIES)]),
    );
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        !says_consistent(&text) && text.contains("NOTHING CHECKED"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no PREP results CSV"), "{err}");
}

/// On arrival with `reject_inconsistent`, a package whose results CSV is empty is rejected
/// naming the file, as one whose results CSV cannot be read.
#[test]
fn a_package_whose_results_csv_is_empty_is_rejected_by_reject_inconsistent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let file = dir.path().join("20210607_1319_PREP_GOB_SON.zip");
    std::fs::write(&file, sonora_package(b"")).unwrap();
    let out = server.run(&["ingest", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("a results CSV cannot be read: SON_GOB_2021.csv, line 1: the file is empty"),
        "{text}"
    );
    assert_eq!(
        server.status()["live"],
        serde_json::Value::Null,
        "nothing published"
    );
}

/// On arrival, a data package in which no results CSV is found (candidacies and a LEEME) is
/// published with a journal warning that nothing in it was checked, naming its files, even
/// under `reject_inconsistent`: nothing in it contradicts a summary, so it is neither rejected
/// nor counted as inconsistent. A site package is never inspected and says nothing of it.
#[test]
fn a_data_package_without_results_is_published_with_a_warning_that_nothing_was_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let site = site_package(
        "20210607_1300",
        &[("descargas/SON_GOB_CANDIDATURAS_2021.csv", CANDIDACIES)],
    );
    drop_file(&server.entrada(), "20210607_1300_PREP_SITIO.zip", &site);
    server.wait_corte("20210607_1300");
    assert_eq!(
        inspection_warnings(&server),
        Vec::<serde_json::Value>::new(),
        "a site package"
    );

    let package = zip_bytes(&[
        ("SON_GOB_CANDIDATURAS_2021.csv", CANDIDACIES),
        ("LEEME.txt", b"campos\r\n"),
    ]);
    let warnings = published_with_inspection_warnings(&server, &package);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert_eq!(w["name"], "20210607_1319_PREP_GOB_SON.zip", "{w:#}");
    let text = w["detail"]["warning"].as_str().unwrap();
    assert!(
        text.starts_with(
            "no PREP results CSV was read from this data package, so nothing in it was checked"
        ) && text.contains("(2: SON_GOB_CANDIDATURAS_2021.csv, LEEME.txt)"),
        "{text}"
    );
    assert_eq!(
        w["detail"]["files"],
        serde_json::json!(["SON_GOB_CANDIDATURAS_2021.csv", "LEEME.txt"]),
        "{w:#}"
    );
    assert_eq!(w["detail"]["file_count"], 2, "{w:#}");
}

/// Sonora with its quotes taken out (no quoted cell of it holds a comma) and the last cell of
/// its 101st row, on line 107, written `"ACTA PREP`: a quote opened and never closed.
fn sonora_with_an_unclosed_quote() -> Vec<String> {
    let mut lines: Vec<String> = sonora_lines().iter().map(|l| l.replace('"', "")).collect();
    assert!(lines[106].ends_with(",ACTA PREP"), "{}", lines[106]);
    lines[106] = lines[106].replace(",ACTA PREP", ",\"ACTA PREP");
    lines
}

/// A quote never closed is an error naming the line where it opened, with or without a
/// summary line, instead of every row after it read as one cell; so is a quoted cell that
/// holds whole rows. A quoted cell with a line break inside it is read as before.
#[test]
fn an_unclosed_quote_is_an_error_naming_the_line_where_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sonora_with_an_unclosed_quote();
    let path = write(dir.path(), SONORA, &joined(&lines));
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "SON_GOB_2021.csv, line 107: a quoted cell opened on this line is never closed"
        ),
        "{err}"
    );

    // Without its summary lines (2 lines fewer), where nothing would be compared.
    let mut unsummed = lines.clone();
    unsummed.drain(2..4);
    let path = write(dir.path(), SONORA, &joined(&unsummed));
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "SON_GOB_2021.csv, line 105: a quoted cell opened on this line is never closed"
        ),
        "{err}"
    );

    // Closed a hundred rows later: the rows between are inside one cell.
    let mut closed_late = lines.clone();
    assert!(closed_late[206].ends_with(",ACTA PREP"));
    closed_late[206].push('"');
    let path = write(dir.path(), SONORA, &joined(&closed_late));
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "SON_GOB_2021.csv, line 107: a quoted cell opened on this line holds whole rows"
        ) && err.contains("line 108"),
        "{err}"
    );

    // A quoted cell with a line break and quotes inside it is one cell, as it should be.
    let mut embedded = sonora_lines();
    set_cell(&mut embedded, 7, 3, "\"SONORA\n\"\"MX\"\"\"");
    let path = write(dir.path(), SONORA, &joined(&embedded));
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["elections"][0]["rows"], 3772, "{v:#}");
    assert_eq!(v["elections"][0]["anomaly_count"], 0, "{v:#}");
}

/// A row with more (or fewer) cells than the header is an anomaly named by its line, not
/// counted, and the rest of the file is read; a flood of them is listed up to the anomaly
/// limit. A file most of whose rows do not fit the header is not read as results.
#[test]
fn a_row_with_an_unquoted_separator_is_an_anomaly_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = sonora_lines();
    set_cell(&mut lines, 107, 3, "SONORA, MX");
    let path = write(dir.path(), SONORA, &joined(&lines));
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(1), "one acta fewer than the summary: {v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["rows"], 3771, "{e:#}");
    assert_eq!(e["unread_rows"], 1, "{e:#}");
    assert_eq!(e["anomaly_count"], 1, "{e:#}");
    assert_eq!(e["anomalies"][0]["line"], 107, "{e:#}");
    let what = e["anomalies"][0]["what"].as_str().unwrap();
    assert!(what.contains("39 cells where the header has 38"), "{what}");
    assert_eq!(field(e, "ACTAS_REGISTRADAS")["recomputed"], "3771", "{e:#}");

    // 300 such rows: all counted, the first 200 listed, the rest read.
    let mut many = sonora_lines();
    for line in 7..307 {
        set_cell(&mut many, line, 3, "SONORA, MX");
    }
    let path = write(dir.path(), SONORA, &joined(&many));
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(1), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["rows"], 3472, "{e:#}");
    assert_eq!(e["anomaly_count"], 300);
    assert_eq!(e["anomalies"].as_array().unwrap().len(), 200);

    // Every row (but those whose last cell is empty, which the shift leaves looking whole): not
    // the rows of that header.
    let mut all = sonora_lines();
    for line in 7..=all.len() {
        set_cell(&mut all, line, 3, "SONORA, MX");
    }
    let path = write(dir.path(), SONORA, &joined(&all));
    let out = inspect(&[&path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SON_GOB_2021.csv, line 7: ")
            && err.contains(" of its 3772 rows have a number of cells other than the header's 38"),
        "{err}"
    );
}

/// `difusor inspect PATH --json`, with its peak resident memory in KiB (`VmHWM`, read while it
/// runs).
fn inspect_peak(path: &str) -> (Output, u64) {
    output_and_peak(difusor().args(["inspect", path, "--json"]))
}

/// Special casillas are told apart without keeping their keys: 500 rows of casilla type S,
/// each with a `CLAVE_CASILLA` of 100 KB, cost no more memory than the same rows of type B.
#[test]
fn special_casillas_with_huge_keys_cost_no_more_memory_than_others() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sonora_lines();
    let file = |tipo: &str| {
        let mut out: Vec<String> = vec![lines[0].clone(), lines[1].clone(), lines[5].clone()];
        for i in 0..500 {
            let mut row = vec![lines[6].clone()];
            set_cell(&mut row, 1, 0, &format!("{i:08}{}", "K".repeat(100_000)));
            set_cell(&mut row, 1, 1, &format!("A{i}"));
            set_cell(&mut row, 1, 8, tipo);
            out.push(row.remove(0));
        }
        write(dir.path(), &format!("{tipo}_GOB_2021.csv"), &joined(&out))
    };
    let (b, b_peak) = inspect_peak(&file("B"));
    let (s, s_peak) = inspect_peak(&file("S"));
    assert_eq!(b.status.code(), Some(0), "{}", stdout(&b));
    assert_eq!(s.status.code(), Some(0), "{}", stdout(&s));
    assert!(
        s_peak < b_peak + 16 * 1024,
        "special casillas: {s_peak} KiB at most, others {b_peak} KiB"
    );
}

/// Anomalies quote a cell cut to 200 characters with its length: 50 rows with a vote cell of
/// 200,000 characters make a report of kilobytes, not of the cells.
#[test]
fn anomalies_quote_huge_cells_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = sonora_lines();
    for line in 7..57 {
        set_cell(&mut lines, line, 18, &"x".repeat(200_000));
    }
    let path = write(dir.path(), SONORA, &joined(&lines));
    let out = inspect(&[&path, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "anomalies alone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() < 500_000,
        "{} bytes of report",
        out.stdout.len()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["elections"][0];
    let in_mc: Vec<&serde_json::Value> = e["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["column"] == "MC")
        .collect();
    assert_eq!(in_mc.len(), 50, "{e:#}");
    let what = in_mc[0]["what"].as_str().unwrap();
    assert!(
        what.starts_with(&format!("\"{}\"… (200000 bytes in all)", "x".repeat(200))),
        "{what}"
    );
}

/// A corte line written no known way is named, with its text, instead of no corte at all.
#[test]
fn a_corte_line_written_no_known_way_is_shown_as_unread() {
    let dir = tempfile::tempdir().unwrap();
    for corte in [
        "07-06-2021 13:19 (UTC-7)",
        "07/06/2021 01:19 p.m. (UTC-7)",
        "07/06/2021 13:19",
        "31/02/2021 13:19 (UTC-7)",
        "2021-06-07T13:19:00-07:00",
    ] {
        let csv = campeche_cut_with("07/06/2021 20:00 (UTC-5)", corte);
        let path = write(dir.path(), "CAMP_GOB_2021.csv", csv.as_bytes());
        let out = inspect(&[&path]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{corte}: {text}");
        let line = text.lines().find(|l| l.starts_with("Corte:")).unwrap();
        assert!(
            line.starts_with("Corte:     not read: line 2 of ")
                && line.ends_with(&format!(
                    "CAMP_GOB_2021.csv looks like a corte but is written no known way: {corte}"
                )),
            "{corte}: {text}"
        );
        let (_, v) = inspect_json(std::path::Path::new(&path), &[]);
        assert_eq!(v["elections"][0]["unread_corte"]["line"], 2, "{v:#}");
        assert_eq!(v["elections"][0]["unread_corte"]["written"], corte, "{v:#}");
    }
}

/// A summary header's names that name no known field are named in the report, text and JSON,
/// instead of skipped unsaid: one written with a space instead of `_`, and one no institute
/// was seen to write. The other fields are read and checked as before.
#[test]
fn summary_fields_named_no_known_way_are_named_as_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = sonora_lines();
    assert!(lines[2].contains(",ACTAS_REGISTRADAS,"), "{}", lines[2]);
    lines[2] =
        lines[2].replacen(",ACTAS_REGISTRADAS,", ",ACTAS REGISTRADAS,", 1) + ",ACTAS_ANULADAS";
    lines[3].push_str(",0");
    let path = write(dir.path(), SONORA, &joined(&lines));
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "2 summary field(s) not read, so not checked, named no known way (line 3): \
             \"ACTAS REGISTRADAS\", \"ACTAS_ANULADAS\""
        ),
        "{text}"
    );
    let end = text
        .split_once("SUMMARY FIELDS NOT READ: named no known way, so not checked:\n")
        .map(|(_, end)| end)
        .unwrap_or_else(|| panic!("no SUMMARY FIELDS NOT READ: {text}"));
    assert!(
        end.starts_with("  ")
            && end.contains(
                "SON_GOB_2021.csv (GUBERNATURA): \"ACTAS REGISTRADAS\", \"ACTAS_ANULADAS\"\n"
            ),
        "{text}"
    );
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(
        e["unread_summary_fields"],
        serde_json::json!({
            "line": 3, "count": 2, "names": ["ACTAS REGISTRADAS", "ACTAS_ANULADAS"],
        }),
        "{e:#}"
    );
    assert_eq!(e["summary"].as_array().unwrap().len(), 12, "{e:#}");

    // Every name known, the real file's: nothing to name.
    let (_, v) = inspect_json(&real_fixture(SONORA), &[]);
    assert_eq!(
        v["elections"][0]["unread_summary_fields"],
        serde_json::Value::Null
    );
    let (_, v) = inspect_json(&real_fixture(CAMPECHE), &[]);
    for e in v["elections"].as_array().unwrap() {
        assert_eq!(e["unread_summary_fields"], serde_json::Value::Null, "{e:#}");
    }

    // A thousand unknown names of 500 characters: the first 20 named, each cut, all counted.
    let mut hostile = sonora_lines();
    for i in 0..1_000 {
        hostile[2].push_str(&format!(",N{i:03}_{}", "X".repeat(496)));
    }
    let path = write(dir.path(), SONORA, &joined(&hostile));
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.len() < 30_000, "{} bytes of report", text.len());
    let (_, v) = inspect_json(std::path::Path::new(&path), &[]);
    let unread = &v["elections"][0]["unread_summary_fields"];
    assert_eq!(unread["count"], 1_000, "{unread:#}");
    let names = unread["names"].as_array().unwrap();
    assert_eq!(names.len(), 20, "{unread:#}");
    let first = format!("N000_{}… (501 bytes in all)", "X".repeat(195));
    assert_eq!(names[0], first.as_str());
    assert!(
        text.contains(&format!(
            "1000 summary field(s) not read, so not checked, named no known way (line 3): \
             \"{first}\""
        )) && text.contains(" and 980 more"),
        "{text}"
    );
}

/// A separator at the end of a line is read as no cell: a row with one cell more than its
/// header, that cell empty, is read as its cells, not shifted and not an anomaly, whether one
/// row ends so, every row, or every line (the summary lines and the column header included).
/// A row with an unquoted separator inside it, whose last cell is not empty, is still
/// refused.
#[test]
fn a_separator_at_the_end_of_a_line_is_read_as_no_cell() {
    let dir = tempfile::tempdir().unwrap();
    let real = sonora_lines();
    let (_, whole) = inspect_json(&real_fixture(SONORA), &[]);
    let whole = &whole["elections"][0];
    let ends = |lines: &[usize]| {
        let mut l = real.clone();
        for &i in lines {
            l[i - 1].push(',');
        }
        joined(&l)
    };
    let all_rows: Vec<usize> = (7..=real.len()).collect();
    let every_line: Vec<usize> = [1, 2, 3, 4, 6].into_iter().chain(7..=real.len()).collect();
    for (case, csv) in [
        ("the first row", ends(&[7])),
        ("every row", ends(&all_rows)),
        ("every line", ends(&every_line)),
    ] {
        let path = write(dir.path(), SONORA, &csv);
        let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
        assert_eq!(code, Some(0), "{case}: {v:#}");
        let e = &v["elections"][0];
        assert_eq!(e["rows"], 3772, "{case}: {e:#}");
        assert_eq!(e["unread_rows"], 0, "{case}: {e:#}");
        assert_eq!(e["anomaly_count"], 0, "{case}: {e:#}");
        assert_eq!(e["consistent"], true, "{case}: {e:#}");
        assert_eq!(e["summary"].as_array().unwrap().len(), 13, "{case}");
        // The same cells in the same columns: every vote, count and date as the file's own.
        for key in ["votes", "by_casilla_type", "by_contabilizada", "latest"] {
            assert_eq!(e[key], whole[key], "{case}: {key}");
        }
        assert_eq!(
            e["unread_summary_fields"],
            serde_json::Value::Null,
            "{case}"
        );
    }

    // The first row with an unquoted separator inside a cell and a trailing separator: one cell
    // more that is not empty, refused as before.
    let mut shifted = real.clone();
    set_cell(&mut shifted, 7, 3, "SONORA, MX");
    shifted[6].push(',');
    let path = write(dir.path(), SONORA, &joined(&shifted));
    let (_, v) = inspect_json(std::path::Path::new(&path), &[]);
    let e = &v["elections"][0];
    assert_eq!(e["unread_rows"], 1, "{e:#}");
    assert_eq!(e["anomalies"][0]["line"], 7, "{e:#}");
}

/// On arrival, a summary field named no known way is a journal warning naming it (`"check":
/// "inspection"`), so the operator knows it went unchecked; it is not a contradiction, so
/// even under `reject_inconsistent` the package is published and not counted inconsistent.
#[test]
fn a_package_whose_summary_names_a_field_no_known_way_is_published_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let mut lines = sonora_lines();
    lines[2] = lines[2].replacen(",ACTAS_REGISTRADAS,", ",ACTAS REGISTRADAS,", 1);
    let package = zip_bytes(&[(SONORA, joined(&lines).as_slice())]);
    let warnings = published_with_inspection_warnings(&server, &package);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert_eq!(
        detail["warning"],
        "SON_GOB_2021.csv (GUBERNATURA): 1 summary field(s) named no known way, so not \
         checked (line 3): \"ACTAS REGISTRADAS\"",
        "{detail:#}"
    );
    assert_eq!(
        detail["unread_summary_fields"]["names"],
        serde_json::json!(["ACTAS REGISTRADAS"]),
        "{detail:#}"
    );
}

/// The real Sonora file with its summary header's thirteen names replaced by names no
/// institute was seen to write.
fn sonora_with_a_summary_named_no_known_way() -> Vec<String> {
    let mut lines = sonora_lines();
    assert!(lines[2].starts_with("ACTAS_ESPERADAS,"), "{}", lines[2]);
    let width = lines[2].split(',').count();
    lines[2] = (1..=width)
        .map(|i| format!("CAMPO {i}"))
        .collect::<Vec<_>>()
        .join(",");
    lines
}

/// A summary header none of whose names is known, over its line of values, is not passed
/// over as if the file had no summary: the report says there is one, that nothing of it was
/// read, and names its fields; the title stays the file's own. A title of two cells with no
/// values under it is still a title.
#[test]
fn a_summary_none_of_whose_names_is_known_is_named_as_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        SONORA,
        &joined(&sonora_with_a_summary_named_no_known_way()),
    );
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "a summary line none of whose 13 field(s) is named a known way (line 3): nothing \
             to compare; not read: \"CAMPO 1\", \"CAMPO 2\""
        ),
        "{text}"
    );
    assert!(!text.contains("no summary line"), "{text}");
    assert!(
        text.contains("NOTHING TO COMPARE: no summary field named a known way in the results read"),
        "{text}"
    );
    assert!(
        text.contains("SUMMARY FIELDS NOT READ: named no known way, so not checked:\n  "),
        "{text}"
    );
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["title"], "GUBERNATURA", "{e:#}");
    assert_eq!(e["summary_present"], false, "{e:#}");
    let unread = &e["unread_summary_fields"];
    assert_eq!(unread["line"], 3, "{unread:#}");
    assert_eq!(unread["count"], 13, "{unread:#}");
    assert_eq!(unread["names"][12], "CAMPO 13", "{unread:#}");

    // No title line: the header is not taken for one.
    let mut untitled = sonora_with_a_summary_named_no_known_way();
    untitled.remove(0);
    let path = write(dir.path(), SONORA, &joined(&untitled));
    let (_, v) = inspect_json(std::path::Path::new(&path), &[]);
    let e = &v["elections"][0];
    assert_eq!(e["unread_summary_fields"]["line"], 2, "{e:#}");
    assert_ne!(e["title"], "CAMPO 1", "{e:#}");

    // A title of two cells over the column header, and no summary: nothing unread.
    let mut lines = sonora_lines();
    lines[0] = "PROCESO ELECTORAL 2021,GUBERNATURA".to_owned();
    lines.drain(2..4);
    let path = write(dir.path(), SONORA, &joined(&lines));
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert!(
        text.contains("no summary line: nothing to compare"),
        "{text}"
    );
    assert!(!text.contains("SUMMARY FIELDS NOT READ"), "{text}");
}

/// [`campeche_cut`] with its summary lines separated by `|` before rows separated by `,`, as
/// INE 2021 writes them, its thirteen names replaced by names no institute was seen to write
/// and its lista nominal written with a thousands comma (`4,569,608` in INE's files).
fn campeche_cut_with_a_pipe_summary_named_no_known_way() -> Vec<String> {
    let cut = campeche_cut_with_a_pipe_summary(&campeche_cut());
    let mut lines: Vec<String> = cut.split('\n').map(str::to_owned).collect();
    let width = lines[2].split('|').count();
    assert_eq!(width, 13, "{}", lines[2]);
    lines[2] = (1..=width)
        .map(|i| format!("CAMPO {i}"))
        .collect::<Vec<_>>()
        .join("|");
    assert_eq!(lines[3].matches("|723|").count(), 1, "{}", lines[3]);
    lines[3] = lines[3].replace("|723|", "|1,723|");
    lines
}

/// A summary none of whose names is known, written with a separator of its own (`|`, as INE
/// 2021 writes its summary before rows separated by `,`), is named as not read with that
/// separator, as one of the rows' separator is: never passed over as no summary, nor its
/// header taken for the title.
#[test]
fn a_summary_none_of_whose_names_is_known_separated_apart_from_the_rows_is_named_as_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let lines = campeche_cut_with_a_pipe_summary_named_no_known_way();
    let path = write(dir.path(), "DIP_FED_2021.csv", lines.join("\n").as_bytes());
    let out = inspect(&[&path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "a summary line none of whose 13 field(s) is named a known way (line 3): nothing \
             to compare; not read: \"CAMPO 1\", \"CAMPO 2\""
        ),
        "{text}"
    );
    assert!(!text.contains("no summary line"), "{text}");
    assert!(text.contains("separator ',' (summary '|')"), "{text}");
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["title"], "GUBERNATURA", "{e:#}");
    assert_eq!(e["summary_present"], false, "{e:#}");
    assert_eq!(e["summary_separator"], "|", "{e:#}");
    assert_eq!(e["rows"], 2, "{e:#}");
    let unread = &e["unread_summary_fields"];
    assert_eq!(unread["line"], 3, "{unread:#}");
    assert_eq!(unread["count"], 13, "{unread:#}");
    assert_eq!(unread["names"][12], "CAMPO 13", "{unread:#}");

    // No title line: the header is not taken for one.
    let mut untitled = lines;
    untitled.remove(0);
    let path = write(
        dir.path(),
        "DIP_FED_2021.csv",
        untitled.join("\n").as_bytes(),
    );
    let (code, v) = inspect_json(std::path::Path::new(&path), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    let e = &v["elections"][0];
    assert_eq!(e["unread_summary_fields"]["line"], 2, "{e:#}");
    assert!(
        !e["title"].as_str().unwrap_or_default().contains("CAMPO"),
        "{e:#}"
    );
}

/// A package whose results CSV has a summary none of whose names is known is published, with
/// a warning naming its fields: the operator knows nothing of it was checked.
#[test]
fn a_package_whose_summary_names_no_field_a_known_way_is_published_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), &["--reject-inconsistent"]);
    let lines = sonora_with_a_summary_named_no_known_way();
    let package = zip_bytes(&[(SONORA, joined(&lines).as_slice())]);
    let warnings = published_with_inspection_warnings(&server, &package);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let detail = &warnings[0]["detail"];
    assert_eq!(detail["unread_summary_fields"]["count"], 13, "{detail:#}");
    assert!(
        detail["warning"]
            .as_str()
            .unwrap()
            .contains("13 summary field(s) named no known way, so not checked (line 3)"),
        "{detail:#}"
    );
}

/// Drops `package` as corte 20210607_1319 of Sonora, waits for it to go live, checks that it
/// was neither rejected nor counted inconsistent, and returns the journal's warnings of
/// `"check": "inspection"`.
fn published_with_inspection_warnings(server: &Server, package: &[u8]) -> Vec<serde_json::Value> {
    drop_file(&server.entrada(), "20210607_1319_PREP_GOB_SON.zip", package);
    server.wait_corte("20210607_1319");
    let status = server.status();
    assert_eq!(status["counts"]["rejected"], 0, "{status:#}");
    assert_eq!(status["counts"]["inconsistent"], 0, "{status:#}");
    inspection_warnings(server)
}

/// The journal's warnings of `"check": "inspection"`.
fn inspection_warnings(server: &Server) -> Vec<serde_json::Value> {
    events(server, "warning")
        .into_iter()
        .filter(|w| w["detail"]["check"] == "inspection")
        .collect()
}
