//! The simulator read back with the project's own PREP reader.

use std::io::Read as _;
use std::time::Duration;

use super::*;

fn settings(casillas: u32, seed: u64, elecciones: &str, desde_hours: u64) -> Settings {
    Settings {
        entidad: "CAMP".into(),
        elecciones: elecciones.split(',').map(String::from).collect(),
        casillas,
        seed,
        fecha: jiff::civil::date(2027, 6, 6),
        desde: Duration::from_secs(desde_hours * 3600),
        partidos: DEFAULT_PARTIDOS.to_owned(),
    }
}

/// The members of a zip: (name, bytes), in zip order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().unwrap().into_owned(), out)
        })
        .collect()
}

/// Inspects every results CSV of a data package with `crate::prep`.
fn inspect(data: &[u8]) -> Vec<crate::prep::FileReport> {
    let mut reports = Vec::new();
    for (_, inner) in unzip(data) {
        for (name, bytes) in unzip(&inner) {
            if name.ends_with("_2027.csv") && !name.contains("CANDIDATURA") {
                let report =
                    crate::prep::inspect_file(&name, &bytes[..], None, &mut |_| {}).unwrap();
                reports.extend(report.elections);
            }
        }
    }
    reports
}

#[test]
fn the_summary_line_is_what_the_rows_give_for_several_seeds_sizes_and_cortes() {
    for (casillas, seed, elecciones, desde) in [
        (300, 1, "GUB,DIP_LOC,AYUN", 0),
        (2_000, 2, "GUB,DIP_LOC,AYUN", 3),
        (5_000, 3, "PRES,DIP_FED,SEN", 5),
        (8_000, 4, "DIP_LOC", 20),
    ] {
        let sim = Simulation::new(&settings(casillas, seed, elecciones, desde)).unwrap();
        for n in [0, 4] {
            let corte = sim.packages(n).unwrap().unwrap();
            let (name, data) = &corte.packages[1];
            let reports = inspect(data);
            assert_eq!(reports.len(), elecciones.split(',').count(), "{name}");
            for r in &reports {
                assert!(r.summary_present && r.summary.len() == 13, "{}", r.file);
                assert!(
                    r.consistent,
                    "{name} {}: {:#?}",
                    r.file,
                    r.differences().collect::<Vec<_>>()
                );
                assert_eq!(r.anomaly_count, 0, "{}: {:#?}", r.file, r.anomalies);
                assert!(r.title.as_deref().unwrap().ends_with("(SIMULACRO)"));
                // No timestamp is later than the corte.
                let local = r.corte.as_ref().unwrap().local.as_deref().unwrap();
                let corte = local[..19].replace('T', " ");
                for (column, latest) in &r.latest {
                    assert!(*latest <= corte, "{name}: {column} {latest} after {corte}");
                }
            }
            if desde >= 3 {
                // Half the night in: actas captured, counted and not, and out of catalogue.
                let r = &reports[0];
                let count = |k: &str| r.by_contabilizada.get(k).copied().unwrap_or(0);
                assert!(
                    count("1") > 0 && count("0") > 0 && count("") > 0 || desde >= 20,
                    "{:?}",
                    r.by_contabilizada
                );
                assert!(r.votes.iter().any(|v| v.votes > 0));
            }
        }
    }
}

#[test]
fn the_layout_is_the_real_fixtures() {
    let sim = Simulation::new(&settings(1_000, 9, "GUB,DIP_LOC,AYUN", 4)).unwrap();
    let corte = sim.packages(0).unwrap().unwrap();
    let (name, data) = &corte.packages[1];
    assert_eq!(name, "20270607_0000_PREP_CAMP.zip");
    let outer = unzip(data);
    let inner_names: Vec<&str> = outer.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        inner_names,
        [
            "20270607_0000_PREP_GUB_CAMP.zip",
            "20270607_0000_PREP_DIP_LOC_CAMP.zip",
            "20270607_0000_PREP_AYUN_CAMP.zip"
        ]
    );
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/real/20210601_1852_PREP_CAMP.zip"
    ))
    .unwrap();
    let real_inner = unzip(&real);
    let real_gob = unzip(
        &real_inner
            .iter()
            .find(|(n, _)| n.contains("_GOB_"))
            .unwrap()
            .1,
    );
    let ours = unzip(&outer[0].1);
    let shape = |files: &[(String, Vec<u8>)]| -> Vec<String> {
        files
            .iter()
            .map(|(n, _)| {
                n.replace("2021", "AAAA")
                    .replace("2027", "AAAA")
                    .replace("GOB", "GUB")
            })
            .collect()
    };
    assert_eq!(shape(&ours), shape(&real_gob));
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .take(6)
            .map(String::from)
            .collect()
    };
    let ours_csv = lines(&ours[1].1);
    let real_csv = lines(&real_gob[1].1);
    // Line order: title, corte, summary header, values, blank, column header.
    assert_eq!(ours_csv[0], "GUBERNATURA (SIMULACRO)");
    assert_eq!(ours_csv[1], "07/06/2027 00:00 (UTC-6)");
    assert_eq!(ours_csv[2], real_csv[2]);
    assert!(ours_csv[4].is_empty() && real_csv[4].is_empty());
    // Column order: the real one, parties and coalitions aside.
    let fixed = |header: &str| -> Vec<String> {
        let cols: Vec<&str> = header.split(',').collect();
        let start = cols
            .iter()
            .position(|c| *c == "TOTAL_VOTOS_SACADOS")
            .unwrap()
            + 1;
        let end = cols.iter().position(|c| *c == "NO_REGISTRADOS").unwrap();
        cols[..start]
            .iter()
            .chain(&cols[end..])
            .map(|c| c.to_string())
            .collect()
    };
    assert_eq!(fixed(&ours_csv[5]), fixed(&real_csv[5]));
    let leeme = String::from_utf8(ours[0].1.clone()).unwrap();
    assert!(leeme.starts_with("SIMULACRO") && leeme.contains("\r\n"));
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let a = Simulation::new(&settings(500, 5, "GUB", 6)).unwrap();
    let b = Simulation::new(&settings(500, 5, "GUB", 6)).unwrap();
    let c = Simulation::new(&settings(500, 6, "GUB", 6)).unwrap();
    let bytes = |s: &Simulation, n: u32| {
        let corte = s.packages(n).unwrap().unwrap();
        corte
            .packages
            .into_iter()
            .map(|(_, b)| b)
            .collect::<Vec<_>>()
    };
    for n in [0, 1] {
        assert_eq!(bytes(&a, n), bytes(&b, n), "corte {n}");
        assert_ne!(bytes(&a, n), bytes(&c, n), "corte {n}");
    }
    // Nothing in them depends on the clock: every zip entry carries the corte's time.
    for package in bytes(&a, 1) {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(package)).unwrap();
        for i in 0..zip.len() {
            let entry = zip.by_index(i).unwrap();
            let t = entry.last_modified().unwrap();
            assert_eq!(
                (t.year(), t.month(), t.day(), t.hour(), t.minute()),
                (2027, 6, 7, 2, 15),
                "{:?}",
                entry.name()
            );
        }
    }
}

#[test]
fn actas_accumulate_along_the_night_and_the_night_ends() {
    let sim = Simulation::new(&settings(3_000, 11, "GUB", 0)).unwrap();
    assert_eq!(sim.cortes(), 97);
    let captured = |n: u32| {
        let corte = sim.packages(n).unwrap().unwrap();
        let r = &inspect(&corte.packages[1].1)[0];
        r.by_contabilizada
            .iter()
            .filter(|(k, _)| *k == "0" || *k == "1")
            .map(|(_, v)| v)
            .sum::<u64>()
    };
    let series: Vec<u64> = [0, 8, 16, 24, 40, 96]
        .iter()
        .map(|&n| captured(n))
        .collect();
    assert_eq!(series[0], 0, "nothing is captured at 20:00");
    assert!(series.windows(2).all(|w| w[0] <= w[1]), "{series:?}");
    assert!(
        series[2] > 3_000 / 10 && series[4] > 3_000 * 9 / 10,
        "{series:?}"
    );
    assert_eq!(series[5], 3_000, "every acta is captured by the end");
    assert!(sim.packages(97).unwrap().is_none());
}

#[test]
fn the_first_site_package_is_complete_and_later_ones_only_change_data() {
    let sim = Simulation::new(&settings(800, 3, "GUB,AYUN", 2)).unwrap();
    let first = sim.packages(0).unwrap().unwrap();
    let second = sim.packages(1).unwrap().unwrap();
    assert_eq!(
        first.packages[0].0,
        "20270606_2200_PREP_SITIO_COMPLETO_CAMP.zip"
    );
    assert_eq!(second.packages[0].0, "20270606_2215_PREP_SITIO_CAMP.zip");
    let names = |p: &[u8]| -> Vec<String> { unzip(p).into_iter().map(|(n, _)| n).collect() };
    let full = names(&first.packages[0].1);
    for f in [
        "index.html",
        "css/prep.css",
        "js/prep.js",
        "img/logo.svg",
        "json/main.json",
        "json/GUB/distrito/1.json",
        "json/AYUN/municipio/1.json",
        "csv/resumen.csv",
    ] {
        assert!(full.iter().any(|n| n == f), "{f} missing from {full:?}");
    }
    let later = names(&second.packages[0].1);
    assert!(
        later
            .iter()
            .all(|n| n.starts_with("json/") || n.starts_with("csv/")),
        "{later:?}"
    );
    let main: serde_json::Value = serde_json::from_slice(
        &unzip(&second.packages[0].1)
            .into_iter()
            .find(|(n, _)| n == "json/main.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(main["corte"], "06/06/2027 22:15 (UTC-6)");
    assert_eq!(main["simulacro"], true);
    // The site's counts are those of the data package.
    let r = &inspect(&second.packages[1].1)[0];
    let declared = |f: &str| {
        r.summary
            .iter()
            .find(|c| c.field == f)
            .unwrap()
            .recomputed
            .clone()
    };
    assert_eq!(
        main["elecciones"][0]["actas_contabilizadas"].to_string(),
        declared("ACTAS_CONTABILIZADAS")
    );
    // No request leaves the site.
    let html = String::from_utf8(
        unzip(&first.packages[0].1)
            .into_iter()
            .find(|(n, _)| n == "index.html")
            .unwrap()
            .1,
    )
    .unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
}
