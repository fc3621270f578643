//! The reader and the recomputation on both real files and on generated files of every
//! variant of FORMATS.md.

use std::path::Path;

use super::*;

fn real(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real")
        .join(name)
}

fn inspect_bytes(name: &str, bytes: &[u8]) -> Result<FileReport, ReadError> {
    inspect_csv(name, bytes, &mut |_| {})
}

fn assert_all_equal(report: &FileReport, fields: usize) {
    assert!(report.summary_present, "{}: no summary", report.file);
    assert_eq!(report.summary.len(), fields, "{}", report.file);
    for c in &report.summary {
        assert!(c.equal, "{}: {c:?}", report.file);
    }
    assert!(report.consistent);
}

#[test]
fn the_real_sonora_file_reproduces_every_summary_field() {
    let bytes = std::fs::read(real("SON_GOB_2021.csv")).unwrap();
    let r = inspect_bytes("SON_GOB_2021.csv", &bytes).unwrap();
    assert_all_equal(&r, 13);
    assert_eq!(r.rows, 3772);
    assert_eq!(r.encoding, "UTF-8 with BOM");
    assert_eq!(r.title.as_deref(), Some("GUBERNATURA"));
    let corte = r.corte.as_ref().unwrap();
    assert_eq!(corte.written, "07/06/2021 13:19 (UTC-7)");
    assert_eq!(corte.local, "2021-06-07T13:19:00-07:00");
    assert_eq!(corte.utc, "2021-06-07T20:19:00Z");
    let field = |name: &str| r.summary.iter().find(|c| c.field == name).unwrap();
    assert_eq!(field("ACTAS_CONTABILIZADAS").recomputed, "3164");
    assert_eq!(field("TOTAL_VOTOS_C_CS").recomputed, "814690");
    assert_eq!(
        field("PORCENTAJE_PARTICIPACION_CIUDADANA").recomputed,
        "44.0964"
    );
    // Spelled ACTAS_FUERA_CATÁLOGO and PORCENTAJE_ACTAS_CON_INCONSISTENCIAS in this file.
    assert_eq!(field("ACTAS_FUERA_CATALOGO").recomputed, "24");
    assert_eq!(
        field("PORCENTAJE_ACTAS_INCONSISTENCIAS").recomputed,
        "16.0885"
    );
    assert_eq!(r.by_contabilizada.get("1"), Some(&3164));
    assert_eq!(r.by_casilla_type.get("S"), Some(&25));
    // "Sin dato" is missing, not zero: RSP has 43 counted actas without a value.
    let rsp = r.votes.iter().find(|v| v.column == "RSP").unwrap();
    assert_eq!((rsp.votes, rsp.missing), (9694, 43));
    assert_eq!(r.anomaly_count, 0, "{:?}", r.anomalies);
}

#[test]
fn the_real_campeche_package_reproduces_every_summary_field() {
    let bytes = std::fs::read(real("20210601_1852_PREP_CAMP.zip")).unwrap();
    let mut outer = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut members = Vec::new();
    for i in 0..outer.len() {
        let mut inner_bytes = Vec::new();
        let mut f = outer.by_index(i).unwrap();
        let stem = f.name().unwrap().trim_end_matches(".zip").to_owned();
        std::io::Read::read_to_end(&mut f, &mut inner_bytes).unwrap();
        let mut inner = zip::ZipArchive::new(std::io::Cursor::new(inner_bytes)).unwrap();
        for j in 0..inner.len() {
            let mut m = inner.by_index(j).unwrap();
            let mut b = Vec::new();
            let path = format!("{stem}/{}", m.name().unwrap());
            std::io::Read::read_to_end(&mut m, &mut b).unwrap();
            members.push(Member {
                path,
                bytes: b.into(),
            });
        }
    }
    let refs: Vec<&Member> = members.iter().collect();
    let report = inspect_members("CAMP", &refs, &|_| {}).unwrap();
    assert_eq!(report.elections.len(), 4);
    assert_eq!(report.other_files.len(), 8, "{:?}", report.other_files);
    for e in &report.elections {
        assert_all_equal(e, 13);
    }
    let titles: Vec<_> = report
        .elections
        .iter()
        .map(|e| e.title.clone().unwrap())
        .collect();
    assert!(titles.contains(&"DIPUTACIONES LOCALES".to_owned()));
    assert_eq!(report.corte.unwrap().written, "01/06/2021 18:52 (UTC-5)");
}

/// One way a real file may be written.
#[derive(Clone, Copy, Default)]
struct Variant {
    latin1: bool,
    pipe: bool,
    eq_cells: bool,
    crlf: bool,
    bom: bool,
    quoted_preamble: bool,
    other_spellings: bool,
    iso_dates: bool,
}

/// One generated acta: casilla type, votes (PAN, PRI, C_PAN_PRI, NO_REGISTRADAS, NULOS),
/// TOTAL_VOTOS_CALCULADO, LISTA_NOMINAL, OBSERVACIONES, CONTABILIZADA.
type GeneratedRow = (
    &'static str,
    [&'static str; 5],
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// A small results file in `v`'s conventions, with a summary line true to its rows:
/// 6 actas (3 counted, 1 not counted, 1 out of the catalogue, 1 not captured).
fn generated(v: Variant) -> Vec<u8> {
    let sep = if v.pipe { "|" } else { "," };
    let nl = if v.crlf { "\r\n" } else { "\n" };
    let cell = |c: &str| {
        if v.eq_cells && !c.is_empty() {
            format!("=\"{c}\"")
        } else {
            c.to_owned()
        }
    };
    let date = |d: &str| {
        if v.iso_dates {
            format!("2021-06-0{} 2{}:00:00", &d[..1], &d[1..])
        } else {
            format!("0{}/06/2021 2{}:00:00", &d[..1], &d[1..])
        }
    };
    let mut text = String::new();
    if v.quoted_preamble {
        text.push_str("\"GUBERNATURA, ELECCIÓN ORDINARIA\"");
        text.push_str(nl);
        text.push_str("\"07/06/2021 13:19 (UTC-7)\"");
    } else {
        text.push_str("GUBERNATURA");
        text.push_str(nl);
        text.push_str("01/06/2021 18:52 (UTC-5)");
    }
    text.push_str(nl);
    text.push_str(nl);
    let (fuera, inconsistencias) = if v.other_spellings {
        (
            "ACTAS_FUERA_DE_CATALOGO",
            "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS",
        )
    } else {
        ("ACTAS_FUERA_CATÁLOGO", "PORCENTAJE_ACTAS_INCONSISTENCIAS")
    };
    let header = [
        "ACTAS_ESPERADAS",
        "ACTAS_REGISTRADAS",
        fuera,
        "ACTAS_CAPTURADAS",
        "PORCENTAJE_ACTAS_CAPTURADAS",
        "ACTAS_CONTABILIZADAS",
        "PORCENTAJE_ACTAS_CONTABILIZADAS",
        inconsistencias,
        "ACTAS_NO_CONTABILIZADAS",
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
        "TOTAL_VOTOS_C_CS",
        "TOTAL_VOTOS_S_CS",
        "PORCENTAJE_PARTICIPACION_CIUDADANA",
    ];
    text.push_str(&header.join(sep));
    text.push_str(nl);
    let pct = |p: &str| {
        if v.eq_cells {
            format!("'{p}'")
        } else {
            format!("'{p}")
        }
    };
    let values = [
        "5".to_owned(),
        "5".to_owned(),
        "1".to_owned(),
        "4".to_owned(),
        pct("80.0000"),
        "3".to_owned(),
        pct("60.0000"),
        pct("20.0000"),
        "1".to_owned(),
        "500".to_owned(),
        "253".to_owned(),
        "201".to_owned(),
        pct("50.6000"),
    ];
    text.push_str(&values.join(sep));
    text.push_str(nl);
    text.push_str(nl);
    let columns = "CLAVE_CASILLA,CLAVE_ACTA,ID_ESTADO,ESTADO,ID_MUNICIPIO,MUNICIPIO,SECCION,\
        ID_CASILLA,TIPO_CASILLA,EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,TOTAL_BOLETAS_SOBRANTES,\
        TOTAL_PERSONAS_VOTARON,TOTAL_REP_PARTIDO_CI_VOTARON,TOTAL_VOTOS_SACADOS,PAN,PRI,C_PAN_PRI,\
        NO_REGISTRADAS,NULOS,TOTAL_VOTOS_ASENTADO,TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,\
        REPRESENTANTES_PP_CI,OBSERVACIONES,CONTABILIZADA,MECANISMOS_TRASLADO,CODIGO_INTEGRIDAD,\
        FECHA_HORA_ACOPIO,FECHA_HORA_CAPTURA,FECHA_HORA_VERIFICACION,ORIGEN,DIGITALIZACION,\
        TIPO_DOCUMENTO";
    text.push_str(&columns.replace(',', sep));
    text.push_str(nl);
    let rows: [GeneratedRow; 6] = [
        ("B", ["100", "50", "5", "1", "4"], "160", "300", "", "1"),
        ("S", ["30", "20", "0", "0", "2"], "52", "0", "", "1"),
        (
            "C",
            ["Sin dato", "40", "0", "0", "1"],
            "41",
            "200",
            "ALGÚN CAMPO ILEGIBLE O SIN DATO",
            "1",
        ),
        (
            "B",
            ["-", "-", "-", "-", "-"],
            "-",
            "250",
            "SIN ACTA POR PAQUETE NO ENTREGADO",
            "0",
        ),
        (
            "",
            ["-", "-", "-", "-", "-"],
            "-",
            "-",
            "FUERA DE CATÁLOGO",
            "-",
        ),
        ("E", ["", "", "", "", ""], "", "180", "", ""),
    ];
    for (i, (tipo, votes, calc, lista, obs, contab)) in rows.iter().enumerate() {
        let key = if i % 2 == 0 {
            format!("'26000{i}{tipo}0100")
        } else {
            format!("'26000{i}{tipo}0100'")
        };
        let acta = format!("'26000{i}{tipo}010005");
        let mut cells: Vec<String> = vec![
            key,
            acta,
            cell("26"),
            "SONORA".into(),
            cell("018"),
            "NAVOJOA".into(),
            cell(&format!("000{i}")),
            cell("01"),
            (*tipo).into(),
            "0".into(),
            "1".into(),
            "5".into(),
            "10".into(),
            (*calc).into(),
            "0".into(),
            (*calc).into(),
        ];
        cells.extend(votes.iter().map(|v| cell(v)));
        cells.extend([
            (*calc).into(),
            (*calc).into(),
            cell(lista),
            "4".into(),
            (*obs).into(),
            (*contab).into(),
            "D".into(),
            "ab12".into(),
            format!("\"{}\"", date(&format!("{}1", i % 4 + 1))),
            date(&format!("{}2", i % 4 + 1)),
            date(&format!("{}3", i % 4 + 1)),
            "CASILLA".into(),
            "MOVIL".into(),
            "\"ACTA PREP\"".into(),
        ]);
        text.push_str(&cells.join(sep));
        text.push_str(nl);
    }
    let mut bytes = if v.bom {
        b"\xEF\xBB\xBF".to_vec()
    } else {
        Vec::new()
    };
    if v.latin1 {
        bytes.extend_from_slice(&encoding_rs::WINDOWS_1252.encode(&text).0);
    } else {
        bytes.extend_from_slice(text.as_bytes());
    }
    bytes
}

#[test]
fn every_variant_is_read_and_reproduces_its_summary() {
    let variants = [
        ("plain", Variant::default()),
        (
            "latin-1 with |",
            Variant {
                latin1: true,
                pipe: true,
                ..Variant::default()
            },
        ),
        (
            "=\"…\" cells",
            Variant {
                eq_cells: true,
                ..Variant::default()
            },
        ),
        (
            "CRLF",
            Variant {
                crlf: true,
                ..Variant::default()
            },
        ),
        (
            "BOM",
            Variant {
                bom: true,
                ..Variant::default()
            },
        ),
        (
            "quoted title and corte",
            Variant {
                quoted_preamble: true,
                ..Variant::default()
            },
        ),
        (
            "other spellings",
            Variant {
                other_spellings: true,
                ..Variant::default()
            },
        ),
        (
            "ISO dates",
            Variant {
                iso_dates: true,
                ..Variant::default()
            },
        ),
        (
            "all at once",
            Variant {
                latin1: true,
                pipe: true,
                eq_cells: true,
                crlf: true,
                bom: false,
                quoted_preamble: true,
                other_spellings: true,
                iso_dates: true,
            },
        ),
    ];
    for (what, v) in variants {
        let r = inspect_bytes("GEN_GOB_2021.csv", &generated(v))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_all_equal(&r, 13);
        assert_eq!(r.rows, 6, "{what}");
        assert_eq!(r.anomaly_count, 0, "{what}: {:?}", r.anomalies);
        let encoding = match (v.latin1, v.bom) {
            (true, _) => "Latin-1",
            (false, true) => "UTF-8 with BOM",
            (false, false) => "UTF-8",
        };
        assert_eq!(r.encoding, encoding, "{what}");
        assert_eq!(r.separator, if v.pipe { '|' } else { ',' }, "{what}");
        let (title, corte, utc) = if v.quoted_preamble {
            (
                "GUBERNATURA, ELECCIÓN ORDINARIA",
                "07/06/2021 13:19 (UTC-7)",
                "2021-06-07T20:19:00Z",
            )
        } else {
            (
                "GUBERNATURA",
                "01/06/2021 18:52 (UTC-5)",
                "2021-06-01T23:52:00Z",
            )
        };
        assert_eq!(r.title.as_deref(), Some(title), "{what}");
        let c = r.corte.as_ref().unwrap();
        assert_eq!((c.written.as_str(), c.utc.as_str()), (corte, utc), "{what}");
        let pan = r.votes.iter().find(|v| v.column == "PAN").unwrap();
        assert_eq!(
            (pan.votes, pan.missing),
            (130, 1),
            "{what}: Sin dato is not zero"
        );
        let coalition = r.votes.iter().find(|v| v.column == "C_PAN_PRI").unwrap();
        assert_eq!(coalition.kind, reader::VoteKind::Coalition);
        assert!(
            r.by_observation
                .iter()
                .any(|o| o.observation == "ALGÚN CAMPO ILEGIBLE O SIN DATO" && o.inconsistency),
            "{what}: {:?}",
            r.by_observation
        );
        assert_eq!(
            r.latest.get("FECHA_HORA_CAPTURA").map(String::as_str),
            Some("2021-06-04 22:00:00"),
            "{what}"
        );
    }
}

#[test]
fn a_changed_vote_and_a_removed_row_are_named() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    // One more vote for PAN in the first acta, its total kept true to its cells.
    let changed = good.replacen(",100,50,5,1,4,160,160,", ",101,50,5,1,4,160,161,", 1);
    assert_ne!(changed, good);
    let r = inspect_bytes("x.csv", changed.as_bytes()).unwrap();
    let differing: Vec<_> = r.differences().map(|c| c.field).collect();
    assert_eq!(
        differing,
        [
            "TOTAL_VOTOS_C_CS",
            "TOTAL_VOTOS_S_CS",
            "PORCENTAJE_PARTICIPACION_CIUDADANA"
        ]
    );

    let lines: Vec<&str> = good.lines().collect();
    let removed: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lines.len() - 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let r = inspect_bytes("x.csv", removed.as_bytes()).unwrap();
    assert!(!r.consistent);
    assert!(
        r.differences()
            .any(|c| c.field == "ACTAS_NO_CONTABILIZADAS")
    );
}

#[test]
fn anomalies_are_reported_with_their_line() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let bad = good
        .replacen(",100,50,5,1,4,160,160,", ",100,50,5,1,4,160,170,", 1)
        .replacen(",30,20,0,", ",30,veinte,0,", 1);
    let r = inspect_bytes("x.csv", bad.as_bytes()).unwrap();
    let lines: Vec<(u64, Option<&str>)> = r
        .anomalies
        .iter()
        .map(|a| (a.line, a.column.as_deref()))
        .collect();
    // The unreadable PRI cell is left out of the sum, so that acta's total disagrees too.
    assert_eq!(
        lines,
        [
            (8, Some("TOTAL_VOTOS_CALCULADO")),
            (9, Some("PRI")),
            (9, Some("TOTAL_VOTOS_CALCULADO"))
        ],
        "{:?}",
        r.anomalies
    );
}

#[test]
fn unreadable_files_name_the_file_line_and_column() {
    let err = inspect_bytes("a.csv", b"hello\nworld\n").unwrap_err();
    assert_eq!(err.file, "a.csv");
    assert!(err.to_string().contains("not a PREP results CSV"), "{err}");

    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let no_lista = good.replacen("LISTA_NOMINAL,", "LISTA,", 1);
    let err = inspect_bytes("b.csv", no_lista.as_bytes()).unwrap_err();
    assert_eq!(
        (err.line, err.column.as_deref()),
        (7, Some("LISTA_NOMINAL")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("b.csv, line 7, column LISTA_NOMINAL:"),
        "{err}"
    );

    let cut: String = good
        .lines()
        .take(9)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "'1,'2,26\n";
    let err = inspect_bytes("c.csv", cut.as_bytes()).unwrap_err();
    assert_eq!(err.line, 10, "{err}");
}

#[test]
fn diputaciones_expect_the_rp_acta_of_each_special_casilla() {
    let good = String::from_utf8(generated(Variant::default())).unwrap();
    let dip = good
        .replacen("GUBERNATURA", "DIPUTACIONES LOCALES", 1)
        .replacen(
            "5,5,1,4,'80.0000,3,'60.0000,'20.0000,",
            "6,5,1,4,'66.6666,3,'50.0000,'16.6666,",
            1,
        );
    assert_ne!(dip, good);
    // The special casilla has one row (mayoría relativa): its RP acta is expected too.
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", dip.as_bytes()).unwrap();
    assert_all_equal(&r, 13);
    // The same summary is wrong for a governor election, which has no RP actas.
    let r = inspect_bytes(
        "GEN_GOB_2021.csv",
        dip.replacen("DIPUTACIONES LOCALES", "GUBERNATURA", 1)
            .as_bytes(),
    )
    .unwrap();
    assert!(r.differences().any(|c| c.field == "ACTAS_ESPERADAS"));

    // A file that lists the RP acta as a row of its own is not given another one.
    let special = dip
        .lines()
        .find(|l| l.starts_with("'260001S0100'"))
        .unwrap();
    let rp = special
        .replacen("'260001S010005", "'260001S010006", 1)
        .replacen(",52,52,0,4,,1,D,", ",52,52,0,4,,,D,", 1);
    assert_ne!(rp, special);
    let listed = dip.replacen(special, &format!("{special}\n{rp}"), 1);
    let r = inspect_bytes("GEN_DIP_LOC_2021.csv", listed.as_bytes()).unwrap();
    assert_eq!(r.rows, 7);
    assert_all_equal(&r, 13);
}
